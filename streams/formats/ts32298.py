"""3GPP TS 32.298-style circuit-switched voice records -> SwitchCdr.

Long calls produce *partial records* (``record_sequence_number`` 1..n, ``cause_for_term``
partialRecord on all but the last). cdrflow rates partials **as deltas** (see
streams/core/partials.py): each partial is a billable item covering only its own time slice,
so spend limits trip while a long call is still running. Hence:

* the first partial (or a complete record) starts at ``seizure_time``; a later partial
  starts ``call_duration`` seconds before its ``release_time`` (the end of its slice) and is
  answered throughout, so its whole slice is billable;
* ``partial_seq`` = ``record_sequence_number`` (0 for a complete record) is part of the CDR
  key, so a re-sent partial is a duplicate while the other partials are not;
* ``call_reference`` is the call id and the correlation id shared by all partials.
"""
from __future__ import annotations

from streams.core.reasons import Reason, RejectError
from streams.formats.common import CtxFor, ts32298_to_ms

NAME = "cdr.v1.Ts32298VoiceRecord"

# CauseForTerm values that mean "the call goes on; more records follow".
PARTIAL_CAUSES = frozenset({1, 2, 16, 17, 18, 19, 21, 22})
UNSUCCESSFUL = 3


def _intl(msisdn: str) -> str:
    # MSISDNs in these records are international digits without the '+'.
    s = (msisdn or "").strip()
    return s if not s or s.startswith("+") else "+" + s


def to_switch_cdr(rec: dict, ctx_for: CtxFor) -> dict:
    rtype = (rec.get("record_type") or "moCallRecord").strip()
    if rtype not in ("moCallRecord", "mtCallRecord"):
        raise RejectError(Reason.UNSUPPORTED_FORMAT, f"record_type {rtype[:30]!r} is not moCallRecord or mtCallRecord")
    seq = rec.get("record_sequence_number")
    seq = 0 if seq is None else seq
    if seq < 0:
        raise RejectError(Reason.BAD_FIELD_TYPE, f"record_sequence_number {seq} is negative")
    cause = rec.get("cause_for_term") or 0
    dur = rec.get("call_duration")
    if not isinstance(dur, int):
        raise RejectError(Reason.BAD_FIELD_TYPE, "call_duration must be an integer")
    seizure = ts32298_to_ms(rec.get("seizure_time"), "seizure_time")
    release = ts32298_to_ms(rec.get("release_time"), "release_time")
    ans = rec.get("answer_time")
    answer = ts32298_to_ms(ans, "answer_time") if ans else None
    if seq > 1:
        # A continuation slice: answered from its first to its last second.
        start = release - dur * 1000
        answer = start
        duration, billsec = dur, dur
    else:
        start = seizure
        duration = max(0, (release - seizure) // 1000)
        billsec = dur if answer is not None and cause != UNSUCCESSFUL else 0
    msisdn = _intl(rec.get("served_msisdn") or "")
    mo = rtype == "moCallRecord"
    other = rec.get("calling_number")
    ref = rec.get("call_reference") or ""
    return {
        "switch_id": rec.get("switch_id") or "",
        "call_id": ref,
        "leg": "mo" if mo else "mt",
        "partial_seq": seq,
        "partial_final": cause not in PARTIAL_CAUSES,
        "correlation_id": ref,
        "account": msisdn,
        "service_user": None,
        "direction": "outbound" if mo else "inbound",
        "caller": msisdn if mo else _intl_opt(other),
        "presented_cli": rec.get("presented_number") or None,
        "called": rec.get("called_number") if mo else msisdn,
        "trunk": rec.get("msc_outgoing_tkgp") if mo else rec.get("msc_incoming_tkgp"),
        "start_ms": start,
        "answer_ms": answer,
        "end_ms": release,
        "duration_s": duration,
        "billsec_s": billsec,
        "disposition": "ANSWERED" if answer is not None and billsec > 0 else (
            "FAILED" if cause in (UNSUCCESSFUL, 4) else "NO ANSWER"),
        "service": "voice",
    }


def _intl_opt(v):
    return v if not v or v.startswith("+") or v.startswith("0") else "+" + v
