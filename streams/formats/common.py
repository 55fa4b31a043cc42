"""Helpers shared by the switch formats: local-time parsing, cause mapping, CLI parsing.

Pure code (no Kafka): mapping a switch record to a SwitchCdr must be testable alone, and the
normaliser calls it once per record, so the helpers avoid strptime (~10 µs a call).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from typing import Any, Callable
from zoneinfo import ZoneInfo

from streams.core.reasons import Reason, RejectError
from streams.core.sources import NumberingContext

# (switch_id, trunk) -> NumberingContext; SourceDirectory.context_for has this shape.
CtxFor = Callable[[Any, Any], NumberingContext]


@dataclass(frozen=True)
class Parsed:
    """One input unit of a switch file: a raw record (dict of the format's schema) or the
    reject it earned, with its file position and bytes so a reject can carry them."""

    line: int
    raw: bytes
    record: dict | None = None
    error: RejectError | None = None
    # The file is damaged here and nothing after this point could be read (a truncated or
    # corrupt container, JSON nested too deep to find where it ends): ``error`` says where.
    fatal: bool = False


@lru_cache(maxsize=64)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


_LOCAL_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?$")


def check_local_time(value: str, field: str) -> None:
    """Format check without a zone, so file parsers can report a bad line with file:line."""
    if not isinstance(value, str) or not _LOCAL_RE.match(value.strip()):
        raise RejectError(Reason.BAD_FIELD_TYPE, f"{field} {str(value)[:40]!r} is not 'YYYY-MM-DD HH:MM:SS'")


def local_to_ms(value: str, tz: str, field: str) -> int:
    """'YYYY-MM-DD HH:MM:SS[.ffffff]' wall-clock time in zone ``tz`` -> UTC epoch ms.

    In the autumn DST overlap the earlier instant (fold=0) is taken: a switch writing local
    time cannot say which one it meant, and the earlier reading never makes a call end
    before it starts when both ends fall in the overlap."""
    m = _LOCAL_RE.match(value.strip()) if isinstance(value, str) else None
    if m is None:
        raise RejectError(Reason.BAD_FIELD_TYPE, f"{field} {str(value)[:40]!r} is not 'YYYY-MM-DD HH:MM:SS'")
    y, mo, d, h, mi, s, frac = m.groups()
    try:
        dt = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s),
                      int((frac or "0").ljust(6, "0")), tzinfo=zone(tz))
    except ValueError as exc:
        raise RejectError(Reason.BAD_FIELD_TYPE, f"{field} {value!r}: {exc}") from None
    return int(dt.timestamp() * 1000)


_TS32298_RE = re.compile(r"(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})(\d{2})([+-])(\d{2})(\d{2})$")


def ts32298_to_ms(value: str, field: str) -> int:
    """A TS 32.298 TimeStamp 'YYMMDDhhmmss±hhmm' (years 2000-2099) or ISO-8601 with an offset."""
    if not isinstance(value, str):
        raise RejectError(Reason.BAD_FIELD_TYPE, f"{field} must be a string")
    m = _TS32298_RE.match(value.strip())
    try:
        if m:
            yy, mo, d, h, mi, s, sign, oh, om = m.groups()
            off = timedelta(hours=int(oh), minutes=int(om)) * (1 if sign == "+" else -1)
            dt = datetime(2000 + int(yy), int(mo), int(d), int(h), int(mi), int(s), tzinfo=timezone(off))
        else:
            dt = datetime.fromisoformat(value.strip())
            if dt.tzinfo is None:
                raise ValueError("no UTC offset")
    except ValueError as exc:
        raise RejectError(Reason.BAD_FIELD_TYPE, f"{field} {value[:40]!r} is not a TS 32.298 TimeStamp: {exc}") from None
    return int(dt.timestamp() * 1000)


_CLID_RE = re.compile(r'^\s*(?:"(?P<qname>[^"]*)"|(?P<name>[^<]*?))\s*<(?P<num>[^>]*)>\s*$')


def clid_number(clid: str) -> str | None:
    """The number inside an Asterisk clid '"Name" <number>' (or a bare number), else None."""
    if not clid:
        return None
    m = _CLID_RE.match(clid)
    if m:
        return m.group("num").strip() or None
    s = clid.strip()
    return s if s and not s.startswith('"') else None


# Q.850 cause names (FreeSWITCH hangup_cause) for calls that never answered.
Q850_BUSY = frozenset({"USER_BUSY", "CALL_REJECTED"})
Q850_NO_ANSWER = frozenset({"NO_ANSWER", "NO_USER_RESPONSE", "ORIGINATOR_CANCEL", "ALLOTTED_TIMEOUT",
                            "LOSE_RACE", "PICKED_OFF", "SUBSCRIBER_ABSENT"})


def q850_disposition(cause: str, answered: bool) -> str:
    # An answered call is billable whatever cleared it (NORMAL_CLEARING, MEDIA_TIMEOUT, ...).
    if answered:
        return "ANSWERED"
    c = (cause or "").strip().upper()
    if c in Q850_BUSY:
        return "BUSY"
    if c in Q850_NO_ANSWER:
        return "NO ANSWER"
    return "FAILED"


def sip_disposition(code: str) -> str:
    """Final SIP response code -> disposition. 486/600 busy; 408/480/487 nobody answered."""
    try:
        n = int(str(code).strip())
    except ValueError:
        raise RejectError(Reason.BAD_FIELD_TYPE, f"sip_code {str(code)[:20]!r} is not a number") from None
    if 200 <= n < 300:
        return "ANSWERED"
    if n in (486, 600):
        return "BUSY"
    if n in (408, 480, 487):
        return "NO ANSWER"
    if 100 <= n < 700:
        return "FAILED"
    raise RejectError(Reason.BAD_FIELD_TYPE, f"sip_code {n} is not a SIP final response")


def as_int(value: Any, field: str) -> int:
    if isinstance(value, bool):
        raise RejectError(Reason.BAD_FIELD_TYPE, f"{field} must be an integer")
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise RejectError(Reason.BAD_FIELD_TYPE, f"{field} {str(value)[:30]!r} is not an integer") from None


def require(rec: dict, *names: str) -> None:
    for n in names:
        v = rec.get(n)
        if v is None or (isinstance(v, str) and not v.strip()):
            raise RejectError(Reason.MISSING_FIELD, f"{n} is absent or empty")
