"""3GPP TS 32.298-style circuit-switched voice records -> SwitchCdr.

Long calls produce *partial records* (``record_sequence_number`` 1..n, ``cause_for_term``
partialRecord on all but the last). Each partial is a billable item priced as its slice of
the whole call (streams/core/partials.py ``rate_slice``), so spend limits trip while a long
call is still running and the partials add up to the price of the unsplit call. Hence:

* every record starts at the call's ``seizure_time`` and is answered at the call's
  ``answer_time`` (a partial repeats both); ``end_ms`` is its ``release_time`` (the end of
  its slice) and ``billsec_s`` its ``call_duration`` (the slice's seconds), so the seconds
  before the slice are ``end - answer - billsec``. A continuation without an
  ``answer_time`` is taken as answered at the start of its slice;
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
    start = seizure
    duration = max(0, (release - seizure) // 1000)
    if seq > 1:
        # A continuation slice: the call was answered before it and talks throughout it.
        if answer is None:
            answer = release - dur * 1000
        billsec = dur
    else:
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
