"""Kamailio accounting records (acc module) -> cdr.v1.KamailioCdr -> SwitchCdr.

Proven against the real program: tests/integration/test_kamailio_real.py runs Kamailio 5.6
(Debian) with tests/fixtures/switches/kamailio/acc.cfg and SIPp calls, then reads what it
wrote. :func:`parse_text` reads a whole file (or log) and accepts all three layouts the acc
module writes, in any of its spellings (db_text table, JSON lines, syslog/stderr lines):

* **dialog CDRs** (``cdr_enable=1``; db_text/SQL table ``acc_cdrs`` or the
  ``log_write_cdr(): start_time=..; end_time=..; duration=..`` log line): ``start_time``,
  ``end_time``, ``duration`` plus the ``cdr_extra`` columns. ``duration`` is
  end - start (src/modules/acc/acc_cdr.c ``set_duration``); ``start_time`` is the dialog's
  creation (INVITE) unless ``cdr_start_on_confirmed=1``, when it is the 200 OK. Billing
  wants the latter: set ``cdr_start_on_confirmed=1``, or the ring time is billed. A
  ``sip_code`` extra tells failed dialogs (``cdr_on_failed``); without it a CDR with zero
  duration is taken as not answered.
* **transaction records** (``acc`` / ``missed_calls`` tables, ``ACC: transaction answered:``
  / ``ACC: call missed:`` log lines, src/modules/acc/acc.h ``ACC_ANSWERED``/``ACC_MISSED``):
  one row per INVITE and one per BYE, no duration. Rows of one file are paired into one
  call by call-id and the unordered pair of tags (either side may send the BYE): answer =
  INVITE time, end = BYE time. An INVITE with a final code >= 300 (``missed_calls`` or a
  ``failed_transaction_flag`` row) is an unanswered attempt. An answered INVITE whose BYE
  is not in the file, or a BYE without its INVITE, is a *half call*: its other half is in
  another file (the proxy rotated its file while the call was up). Given a :class:`Carry`
  (``cdrflow collect`` keeps one per spool in its manifest; ``cdrflow publish`` one across
  the files of one command) the half is held and paired with the next files' rows; it is
  rejected (``missing_field``) when no file of the next ``CARRY_HOLD_S`` seconds of switch
  time completes it, or, without a carry or at the last file, at once. Times have the
  table's resolution (whole seconds).
* **enriched rows** (one record per call with ``duration``/``setuptime`` already computed,
  e.g. acc_json with extras): read as they are.

Columns: ``callid``/``call_id``; caller ``src_user`` (aliases ``caller``, ``from_user``);
called ``dst_user`` (``callee``, ``to_user``, ``ruri_user``); account ``accountcode``
(alias ``account``), else the From user (a SIP subscriber is billed as itself); optional
``pai_user`` (network-asserted caller; the From user is then the presented CLI), ``trunk``,
``direction``. Times: epoch seconds (db_text writes datetime columns as time_t; the CDR log
line as ``seconds.millis``) or local ``YYYY-MM-DD HH:MM:SS`` (SQL datetime) read in the
switch's zone. Fractional talk time rounds *up* to whole seconds.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

from streams.core.reasons import Reason, RejectError
from streams.formats.common import CtxFor, Parsed, check_local_time, local_to_ms, require, sip_disposition

NAME = "cdr.v1.KamailioCdr"

ALIASES = {"call_id": "callid", "code": "sip_code", "reason": "sip_reason", "start": "start_time",
           "time": "start_time", "timestamp": "start_time", "setup_time": "setuptime", "from_user": "src_user",
           "caller": "src_user", "to_user": "dst_user", "callee": "dst_user", "ruri_user": "dst_user",
           "from_domain": "src_domain", "to_domain": "dst_domain", "accountcode": "account"}
STR_FIELDS = ("callid", "from_tag", "to_tag", "src_user", "src_domain", "dst_user", "dst_domain",
              "start_time", "sip_code", "sip_reason")
OPT_FIELDS = ("pai_user", "account", "trunk", "direction")


def _canon(d: Any) -> dict:
    if not isinstance(d, dict):
        raise RejectError(Reason.UNSUPPORTED_FORMAT, f"Kamailio record must be an object, got {type(d).__name__}")
    out: dict = {}
    for k, v in d.items():
        k = ALIASES.get(k, k)
        # two spellings of one column (account + accountcode): the first non-empty wins
        if k not in out or out[k] in (None, ""):
            out[k] = v
    return out


def _is_cdr_row(d: dict) -> bool:
    """A dialog CDR (acc_cdrs / log_write_cdr) has an end time; transaction rows never do."""
    return "end_time" in d


def _is_transaction_row(d: dict) -> bool:
    """An acc / missed_calls row: a method and no duration of its own (it needs its pair)."""
    return "method" in d and "duration" not in d and "setuptime" not in d


def from_mapping(d: Any) -> dict:
    d = _canon(d)
    cdr_row = _is_cdr_row(d)
    rec: dict = {}
    for k in STR_FIELDS:
        v = d.get(k, "")
        rec[k] = "" if v is None else str(v)
    for k in OPT_FIELDS:
        v = d.get(k)
        rec[k] = str(v) if v not in (None, "") else None
    # A dialog CDR names no SIP code unless cdr_extra adds one; its duration says whether it was answered.
    require(rec, "callid", "src_user", "dst_user", "start_time", *(() if cdr_row else ("sip_code",)))
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
    if rec["sip_code"]:
        sip_disposition(rec["sip_code"])  # validates the code early, so a file line is reported
    return rec


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


_DBTEXT_COL = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\(")
# Kamailio's own log prefix ("<pid> NOTICE: acc [acc.c:287]: ...") or syslog's: a log line
# that is not an accounting line is another log message, not a broken record.
_LOG_LINE = re.compile(r"\b(?:DEBUG|INFO|NOTICE|WARNING|ERROR|ERR|CRITICAL|ALERT|BUG|EMERGENCY)\b:")
# The acc module's syslog kinds (src/modules/acc/acc.h ACC_REQUEST/ACC_MISSED/ACC_ANSWERED/ACC_ACKED)
# and the dialog-CDR line written by log_write_cdr() (src/modules/acc/acc_cdr.c).
_ACC_PREFIX = re.compile(r"ACC: (?:request accounted|call missed|transaction answered|request acknowledged|call ended): ")
_CDR_PREFIX = re.compile(r"log_write_cdr\(\): ")
_BARE_KV = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


# A half call waits this long (switch time: the newest transaction row of a later file minus
# the half's own newest row) for its other half; longer calls than a day are not expected.
CARRY_HOLD_S = 86_400


@dataclass
class Carry:
    """Transaction rows of half calls, held from one file to the next: (raw line, canonical
    row, origin ``file:line``). ``final``: the file being read is the last one, so nothing is
    held any more and every half still open is rejected."""

    rows: list[tuple[bytes, dict, str]] = field(default_factory=list)
    final: bool = False
    hold_s: float = CARRY_HOLD_S
    held_now: int = 0   # rows of the file just read that were held (so it is not "empty")

    def to_json(self) -> str:
        # latin-1 maps every byte to one code point: the raw line round-trips exactly.
        return json.dumps([[raw.decode("latin-1"), row, origin] for raw, row, origin in self.rows])

    @classmethod
    def from_json(cls, text: str | None) -> "Carry":
        rows = json.loads(text) if text else []
        return cls([(raw.encode("latin-1"), row, origin) for raw, row, origin in rows])


def parse_text(data: bytes | str, carry: Carry | None = None, name: str = "") -> Iterator[Parsed]:
    """Records and rejects of one file in line order (a paired call at its INVITE's line, or at
    the first of its rows in this file when the INVITE came in an earlier file).

    A call both logged as transactions and as a dialog CDR (log_flag with cdr_enable: both go
    to syslog by default) is kept once, as the dialog CDR: it has millisecond times.
    ``carry`` holds half calls over to the next file (module docstring); ``name`` is this
    file's name, recorded as the origin of the rows it holds."""
    if carry is not None:
        carry.held_now = 0
    out = list(_parse(data, carry, name))
    cdr_calls = {p.record["callid"] for p in out if p.record is not None and p.record.get("_layout") == "cdr"}
    kept = []
    for p in out:
        if p.record is not None:
            layout = p.record.pop("_layout", None)
            if layout == "transaction" and p.record["callid"] in cdr_calls:
                continue
        kept.append(p)
    if not out and data.strip() and not (carry is not None and carry.held_now):
        kept.append(Parsed(0, b"", error=RejectError(Reason.UNSUPPORTED_FORMAT,
                                                         "no Kamailio accounting record in the file")))
    return iter(sorted(kept, key=lambda p: p.line))


def _parse(data: bytes | str, carry: Carry | None = None, name: str = "") -> Iterator[Parsed]:
    data = data.encode() if isinstance(data, str) else data
    lines = data.splitlines()
    cols: list[str] | None = None
    pending: list[tuple[int, bytes, dict, str]] = []  # transaction rows, paired once the file is read
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
                except (ValueError, RecursionError) as exc:
                    raise RejectError(Reason.UNSUPPORTED_FORMAT, f"not JSON: {exc}") from None
            elif cols is not None:
                vals = _dbtext_split(text)
                if len(vals) != len(cols):
                    raise RejectError(Reason.UNSUPPORTED_FORMAT, f"{len(vals)} db_text values, header has {len(cols)}")
                d = dict(zip(cols, vals))
            else:
                body = _log_body(text)
                if body is None:
                    continue  # another log message of the proxy, not an accounting record
                d = _kv(body)
            dc = _canon(d)
            if _is_transaction_row(dc):
                pending.append((no, raw, dc, ""))
                continue
            rec = from_mapping(d)
            if _is_cdr_row(dc):
                rec["_layout"] = "cdr"
            yield Parsed(no, raw, record=rec)
        except RejectError as exc:
            yield Parsed(no, raw, error=exc)
    yield from _pair(pending, carry, name)


def _log_body(text: str) -> str | None:
    m = _ACC_PREFIX.search(text) or _CDR_PREFIX.search(text)
    if m:
        return text[m.end():]
    if _BARE_KV.match(text):
        return text
    if _LOG_LINE.search(text) or "=" not in text:
        return None
    raise RejectError(Reason.UNSUPPORTED_FORMAT, "no key=value pairs, no db_text header, not JSON")


def _secs(value: Any) -> float:
    """Epoch seconds, or a local datetime read as if UTC: only differences of two times of one
    table are taken, so the zone cancels out (an hour is wrong across a DST change)."""
    s = str(value or "").strip()
    try:
        return float(s)
    except ValueError:
        check_local_time(s, "time")
        from datetime import datetime, timezone
        return datetime.fromisoformat(s.replace(" ", "T")).replace(tzinfo=timezone.utc).timestamp()


def _code(d: dict) -> int:
    try:
        return int(str(d.get("sip_code") or "").strip())
    except ValueError:
        return 0


def _pair(rows: list[tuple[int, bytes, dict, str]], carry: Carry | None = None, name: str = "") -> Iterator[Parsed]:
    """INVITE + BYE transaction rows of one call -> one record with answer time and duration.

    Rows are (line, raw, canonical row, origin): origin "" for this file's rows, ``file:line``
    for rows a ``carry`` held from an earlier file (line 0)."""
    calls: dict[str, list[tuple[int, bytes, dict, str]]] = {}
    if carry is not None:
        for raw, row, origin in carry.rows:
            calls.setdefault(str(row.get("callid") or ""), []).append((0, raw, row, origin))
        carry.rows = []
    for row in rows:
        calls.setdefault(str(row[2].get("callid") or ""), []).append(row)
    newest = max((_time_or_none(r[2]) for r in rows), default=None, key=lambda t: -math.inf if t is None else t)
    for callid, group in calls.items():
        raw = b"\n".join(g[1] for g in group)
        here = [g[0] for g in group if g[0] > 0]
        line = min(here) if here else 0
        try:
            if not callid:
                raise RejectError(Reason.MISSING_FIELD, "callid is absent or empty")
            invites = [g for g in group if str(g[2].get("method", "")).upper() == "INVITE"]
            byes = [g for g in group if str(g[2].get("method", "")).upper() == "BYE"]
            answered = [g for g in invites if 200 <= _code(g[2]) < 300]
            if answered:
                no, _, inv = answered[0][:3]
                line = no or line
                tags = frozenset((inv.get("from_tag") or "", inv.get("to_tag") or ""))
                match = [b for b in byes if frozenset((b[2].get("from_tag") or "", b[2].get("to_tag") or "")) == tags]
                if not match and len(byes) == 1:
                    match = byes  # a B2BUA may rewrite a tag; one BYE for one call-id is still its end
                if not match:
                    if _hold(carry, group, newest, name):
                        continue
                    raise RejectError(Reason.MISSING_FIELD, f"answered INVITE of {callid}{_origin(group)} has no BYE "
                                                            f"{_where(carry)}")
                talk = _secs(match[0][2].get("start_time")) - _secs(inv.get("start_time"))
                if talk < 0:
                    raise RejectError(Reason.END_BEFORE_START, f"BYE of {callid} is logged before its INVITE")
                yield Parsed(line, raw, record={**from_mapping({**inv, "duration": talk}), "_layout": "transaction"})
            elif invites:
                # Several failed branches of one attempt (serial forking): the last final reply is the call's.
                no, _, inv = invites[-1][:3]
                yield Parsed(no or line, raw, record={**from_mapping({**inv, "duration": 0}), "_layout": "transaction"})
            elif byes:
                if _hold(carry, group, newest, name):
                    continue
                raise RejectError(Reason.MISSING_FIELD, f"BYE of {callid}{_origin(group)} without its INVITE "
                                                        f"{_where(carry)}")
            else:
                raise RejectError(Reason.UNSUPPORTED_FORMAT,
                                  f"{group[0][2].get('method')} rows of {callid} are no call (only INVITE and BYE are billed)")
        except RejectError as exc:
            yield Parsed(line, raw, error=exc)


def _time_or_none(row: dict) -> float | None:
    try:
        return _secs(row.get("start_time"))
    except (RejectError, ValueError):
        return None


def _hold(carry: Carry | None, group: list, newest: float | None, name: str) -> bool:
    """Keep a half call for the next file, unless this is the last file or it waited too long."""
    if carry is None or carry.final:
        return False
    own = [t for t in (_time_or_none(g[2]) for g in group) if t is not None]
    if newest is not None and own and newest - max(own) > carry.hold_s:
        return False
    for no, raw, row, origin in group:
        carry.rows.append((raw, row, origin or f"{name}:{no}"))
        carry.held_now += bool(no)
    return True


def _origin(group: list) -> str:
    held = [g[3] for g in group if g[3]]
    return f" (held from {', '.join(held)})" if held else ""


def _where(carry: Carry | None) -> str:
    if carry is None:
        return "in this file (the call was still up, or its other half is in the next file)"
    if carry.final:
        return "in this file or the files before it (the last file given)"
    return f"within {carry.hold_s:g} s of switch time in the files after it"


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


def _kv(body: str) -> dict:
    """'timestamp=..;method=INVITE;...' (transaction line, ';') or 'start_time=..; end_time=..'
    (dialog CDR line, '; ') -> dict."""
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
    code = rec.get("sip_code") or ""
    # a dialog CDR without a sip_code extra: a confirmed dialog has a duration, a failed one none
    disposition = sip_disposition(code) if code else ("ANSWERED" if talk > 0 else "FAILED")
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
