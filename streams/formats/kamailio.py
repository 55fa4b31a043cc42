"""Kamailio accounting records (acc module + dialog CDRs) -> cdr.v1.KamailioCdr -> SwitchCdr.

Input spellings accepted by :func:`parse_text`: JSON lines (acc_json), db_text tables (a
header of ``name(type)`` columns, then ':'-separated rows with ``\\:`` escapes), and the
``key=value;...`` lines the acc module writes to syslog.

* **times** - ``start_time`` is the dialog start: the 200 OK for answered calls. Seizure is
  ``start_time - setuptime``. A local string is read in the switch's zone; a number is
  epoch seconds. Fractional durations round *up* to whole seconds (per-second billing
  never bills less than was used).
* **caller vs presented CLI** - the From user is what the caller presented; a
  P-Asserted-Identity user (acc extra ``pai_user``) is the network-asserted real caller, so
  when present it is the caller and the From user the presented CLI.
* **account** - acc extra ``account`` when configured, else the From user (a SIP subscriber
  is billed as itself).
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Iterable, Iterator

from streams.core.reasons import Reason, RejectError
from streams.formats.common import CtxFor, Parsed, check_local_time, local_to_ms, require, sip_disposition

NAME = "cdr.v1.KamailioCdr"

ALIASES = {"call_id": "callid", "code": "sip_code", "reason": "sip_reason", "start": "start_time",
           "time": "start_time", "setup_time": "setuptime", "from_user": "src_user", "to_user": "dst_user",
           "ruri_user": "dst_user", "from_domain": "src_domain", "to_domain": "dst_domain"}
STR_FIELDS = ("callid", "from_tag", "to_tag", "src_user", "src_domain", "dst_user", "dst_domain",
              "start_time", "sip_code", "sip_reason")
OPT_FIELDS = ("pai_user", "account", "trunk", "direction")


def from_mapping(d: Any) -> dict:
    if not isinstance(d, dict):
        raise RejectError(Reason.UNSUPPORTED_FORMAT, f"Kamailio record must be an object, got {type(d).__name__}")
    d = {ALIASES.get(k, k): v for k, v in d.items()}
    rec: dict = {}
    for k in STR_FIELDS:
        v = d.get(k, "")
        rec[k] = "" if v is None else str(v)
    for k in OPT_FIELDS:
        v = d.get(k)
        rec[k] = str(v) if v not in (None, "") else None
    require(rec, "callid", "src_user", "dst_user", "start_time", "sip_code")
    for k in ("duration", "setuptime"):
        v = d.get(k)
        try:
            rec[k] = float(v) if v not in (None, "") else 0.0
        except (TypeError, ValueError):
            raise RejectError(Reason.BAD_FIELD_TYPE, f"{k} {str(v)[:30]!r} is not a number") from None
        if not math.isfinite(rec[k]):
            raise RejectError(Reason.BAD_DURATION, f"{k} is not finite")
    if not _is_number(rec["start_time"]):
        check_local_time(rec["start_time"], "start_time")
    sip_disposition(rec["sip_code"])  # validates the code early, so a file line is reported
    return rec


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


_DBTEXT_COL = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\(")


def parse_text(data: bytes | str) -> Iterator[Parsed]:
    data = data.encode() if isinstance(data, str) else data
    lines = data.splitlines()
    cols: list[str] | None = None
    for no, raw in enumerate(lines, 1):
        text = raw.decode("utf-8", "replace").strip()
        if not text or text.startswith("#"):
            continue
        if no == 1 and all(_DBTEXT_COL.match(t) for t in text.split()):
            cols = [_DBTEXT_COL.match(t).group(1) for t in text.split()]
            continue
        try:
            if text.startswith("{"):
                try:
                    d = json.loads(text)
                except ValueError as exc:
                    raise RejectError(Reason.UNSUPPORTED_FORMAT, f"not JSON: {exc}") from None
            elif cols is not None:
                vals = _dbtext_split(text)
                if len(vals) != len(cols):
                    raise RejectError(Reason.UNSUPPORTED_FORMAT, f"{len(vals)} db_text values, header has {len(cols)}")
                d = dict(zip(cols, vals))
            else:
                d = _kv(text)
            yield Parsed(no, raw, record=from_mapping(d))
        except RejectError as exc:
            yield Parsed(no, raw, error=exc)


def _dbtext_split(text: str) -> list[str]:
    out, cur, esc = [], [], False
    for ch in text:
        if esc:
            cur.append(ch)
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == ":":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def _kv(text: str) -> dict:
    """'ACC: transaction answered: callid=..;code=200;...' -> dict."""
    body = text.split(": ")[-1] if "=" not in text.split(": ")[0] else text
    d = {}
    for part in body.split(";"):
        k, sep, v = part.partition("=")
        if sep:
            d[k.strip()] = v.strip()
    if not d:
        raise RejectError(Reason.UNSUPPORTED_FORMAT, "no key=value pairs, no db_text header, not JSON")
    return d


def parse_lines(lines: Iterable[bytes]) -> Iterator[Parsed]:
    return parse_text(b"\n".join(lines))


def _start_ms(value: str, tz: str) -> int:
    try:
        return int(round(float(value) * 1000))
    except ValueError:
        return local_to_ms(value, tz, "start_time")


def to_switch_cdr(rec: dict, ctx_for: CtxFor) -> dict:
    switch_id = rec.get("switch_id") or ""
    trunk = rec.get("trunk")
    tz = ctx_for(switch_id, trunk).timezone
    t0 = _start_ms(rec.get("start_time") or "", tz)
    setup_ms = int(round((rec.get("setuptime") or 0.0) * 1000))
    talk = rec.get("duration") or 0.0
    if talk < 0 or setup_ms < 0:
        raise RejectError(Reason.BAD_DURATION, f"negative duration {talk} or setuptime {setup_ms / 1000}")
    disposition = sip_disposition(rec.get("sip_code") or "")
    answered = disposition == "ANSWERED"
    start = t0 - setup_ms
    end = t0 + (int(round(talk * 1000)) if answered else 0)
    billsec = math.ceil(talk - 1e-9) if answered else 0
    pai = rec.get("pai_user")
    frm = rec.get("src_user") or ""
    caller = pai or frm
    callid = rec.get("callid") or ""
    return {
        "switch_id": switch_id,
        "call_id": callid,
        "leg": "A",
        "partial_seq": 0,
        "partial_final": True,
        "correlation_id": callid,
        "account": rec.get("account") or frm,
        "service_user": caller or None,
        "direction": (rec.get("direction") or "outbound").lower(),
        "caller": caller,
        "presented_cli": frm if pai and frm and frm != pai else None,
        "called": rec.get("dst_user") or "",
        "trunk": trunk,
        "start_ms": start,
        "answer_ms": t0 if answered else None,
        "end_ms": end,
        "duration_s": math.ceil((end - start) / 1000 - 1e-9),
        "billsec_s": billsec,
        "disposition": disposition,
        "service": "voice",
    }
