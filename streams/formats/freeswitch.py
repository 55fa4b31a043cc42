"""FreeSWITCH CDRs: mod_json_cdr files -> cdr.v1.FreeswitchCdr -> SwitchCdr.

* **caller vs presented CLI** - ``caller_id_number`` of the caller profile is the real
  caller; ``effective_caller_id_number`` (or ``origination_caller_id_number``) is what the
  leg presented, kept as ``presented_cli`` when it differs (seed 003).
* **times** are epoch seconds, already UTC: no zone is needed.
* **identity** - each leg is its own CDR keyed by its ``uuid``; ``call_uuid`` (FreeSWITCH sets
  it to the A leg's uuid on both legs) correlates them, else the leg's own uuid.
* **direction** - FreeSWITCH's own ``direction`` variable is the channel's direction relative
  to FreeSWITCH (a phone calling out is an *inbound* channel), so it is not the billing
  direction; the dialplan sets ``cdr_direction`` for that, default outbound.
* **values** - mod_json_cdr URL-encodes variable values by default; they are decoded.
"""
from __future__ import annotations

import json
from typing import Any, Iterable, Iterator
from urllib.parse import unquote

from streams.core.reasons import Reason, RejectError
from streams.formats.common import CtxFor, Parsed, as_int, q850_disposition, require

NAME = "cdr.v1.FreeswitchCdr"


def _s(v: Any) -> str | None:
    if v is None:
        return None
    s = str(v)
    return unquote(s) if "%" in s else s


def _profile(doc: dict) -> dict:
    flow = doc.get("callflow")
    if isinstance(flow, list):
        flow = flow[0] if flow else {}
    prof = (flow or {}).get("caller_profile") if isinstance(flow, dict) else None
    return prof if isinstance(prof, dict) else {}


def from_json(doc: Any) -> dict:
    """One mod_json_cdr document (or an already flat FreeswitchCdr dict) -> FreeswitchCdr dict."""
    if not isinstance(doc, dict):
        raise RejectError(Reason.UNSUPPORTED_FORMAT, f"FreeSWITCH CDR must be a JSON object, got {type(doc).__name__}")
    v = doc.get("variables")
    if not isinstance(v, dict):
        v = doc  # flat form
    prof = _profile(doc)
    g = lambda *names: next((_s(v[n]) for n in names if v.get(n) not in (None, "")), None)  # noqa: E731
    rec = {
        "uuid": g("uuid") or _s(prof.get("uuid")),
        "bleg_uuid": g("bleg_uuid"),
        "call_uuid": g("call_uuid"),
        "direction": (g("cdr_direction") or "outbound").lower(),
        "caller_id_name": g("caller_id_name") or _s(prof.get("caller_id_name")) or "",
        "caller_id_number": g("caller_id_number") or _s(prof.get("caller_id_number")),
        "effective_caller_id_number": g("effective_caller_id_number"),
        "origination_caller_id_number": g("origination_caller_id_number"),
        "destination_number": g("destination_number") or _s(prof.get("destination_number")),
        "accountcode": g("accountcode") or "",
        "gateway": g("sip_gateway_name", "gateway"),
        "last_app": g("last_app"),
        "stage": g("cdr_stage", "stage"),
        "hangup_cause": g("hangup_cause"),
    }
    require(rec, "uuid", "caller_id_number", "destination_number", "hangup_cause")
    for k in ("start_epoch", "end_epoch"):
        if v.get(k) in (None, ""):
            raise RejectError(Reason.MISSING_FIELD, f"{k} is absent or empty")
        rec[k] = as_int(v[k], k)
    rec["answer_epoch"] = as_int(v.get("answer_epoch") or 0, "answer_epoch")
    rec["billsec"] = as_int(v.get("billsec") or 0, "billsec")
    rec["duration"] = as_int(v["duration"], "duration") if v.get("duration") not in (None, "") else None
    return rec


def parse_text(text: bytes | str) -> Iterator[Parsed]:
    """A JSON CDR file: one object (mod_json_cdr writes one per call), a JSON array of them,
    or JSON lines. Line numbers point at the object's line (1 for a one-object file)."""
    data = text.encode() if isinstance(text, str) else text
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        doc = None
    if isinstance(doc, list):
        for i, d in enumerate(doc, 1):
            yield _one(i, json.dumps(d).encode(), d)
        return
    if isinstance(doc, dict):
        yield _one(1, data, doc)
        return
    yield from parse_lines(data.splitlines())


def parse_lines(lines: Iterable[bytes]) -> Iterator[Parsed]:
    for no, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            d = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            yield Parsed(no, raw, error=RejectError(Reason.UNSUPPORTED_FORMAT, f"not JSON: {exc}"))
            continue
        yield _one(no, raw, d)


def _one(no: int, raw: bytes, doc: Any) -> Parsed:
    try:
        return Parsed(no, raw, record=from_json(doc))
    except RejectError as exc:
        return Parsed(no, raw, error=exc)


def to_switch_cdr(rec: dict, ctx_for: CtxFor) -> dict:
    start, answer, end = rec.get("start_epoch"), rec.get("answer_epoch") or 0, rec.get("end_epoch")
    if not isinstance(start, int) or not isinstance(end, int):
        raise RejectError(Reason.BAD_FIELD_TYPE, "start_epoch and end_epoch must be integers")
    caller = rec.get("caller_id_number") or ""
    shown = rec.get("effective_caller_id_number") or rec.get("origination_caller_id_number")
    uuid = rec.get("uuid") or ""
    stage = rec.get("stage")
    duration = rec.get("duration")
    return {
        "switch_id": rec.get("switch_id") or "",
        "call_id": uuid,
        "leg": stage.lower() if stage else "A",
        "partial_seq": 0,
        "partial_final": True,
        "correlation_id": rec.get("call_uuid") or uuid,
        "account": rec.get("accountcode") or "",
        "service_user": None,
        "direction": rec.get("direction") or "outbound",
        "caller": caller,
        "presented_cli": shown if shown and shown != caller else None,
        "called": rec.get("destination_number") or "",
        "trunk": rec.get("gateway"),
        "start_ms": start * 1000,
        "answer_ms": answer * 1000 if answer > 0 else None,
        "end_ms": end * 1000,
        "duration_s": duration if duration is not None else end - start,
        "billsec_s": rec.get("billsec"),
        "disposition": q850_disposition(rec.get("hangup_cause") or "", answer > 0),
        "service": "voice",
    }
