"""Credit periods: calendar weeks (ISO, Monday start) or months, in the account's time zone.

Periods are not fixed-size (months differ, DST shifts local midnight), which is why spend is
keyed by a period label computed here instead of by tumbling windows.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

WEEKLY = "weekly"
MONTHLY = "monthly"
KINDS = (WEEKLY, MONTHLY)


@lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def period_of(ms: int, tz: str, kind: str) -> str:
    """Label of the period that contains the UTC instant ``ms``: '2026-11' or '2026-W47'."""
    # Every real UTC offset is a multiple of 15 minutes, so a local period boundary never falls
    # inside a 15-minute UTC bucket; caching per bucket keeps zoneinfo off the per-CDR path.
    return _period_of_bucket(ms // _BUCKET_MS, tz, kind)


_BUCKET_MS = 15 * 60 * 1000


@lru_cache(maxsize=65536)
def _period_of_bucket(bucket: int, tz: str, kind: str) -> str:
    local = datetime.fromtimestamp(bucket * _BUCKET_MS // 1000, tz=zone(tz))
    if kind == MONTHLY:
        return f"{local.year:04d}-{local.month:02d}"
    if kind == WEEKLY:
        y, w, _ = local.isocalendar()
        return f"{y:04d}-W{w:02d}"
    raise ValueError(f"unknown period kind {kind!r}; use weekly or monthly")


def period_bounds(label: str, tz: str) -> tuple[int, int]:
    """UTC epoch-ms [start, end) of a period label, DST-correct in ``tz``."""
    z = zone(tz)
    if "-W" in label:
        y, w = label.split("-W")
        start = datetime.fromisocalendar(int(y), int(w), 1).replace(tzinfo=z)
        end_naive = datetime.fromisocalendar(int(y), int(w), 1) + timedelta(days=7)
        end = end_naive.replace(tzinfo=z)
    else:
        y, m = (int(x) for x in label.split("-"))
        start = datetime(y, m, 1, tzinfo=z)
        end = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=z)
    to_ms = lambda d: int(d.astimezone(timezone.utc).timestamp()) * 1000
    return to_ms(start), to_ms(end)


def is_later(a: str, b: str) -> bool:
    """True when period label ``a`` is after ``b`` (labels of one kind sort chronologically)."""
    return a > b


# --- closed financial periods ----------------------------------------------------------------
#
# The same rules as sinks/clickhouse/periods.py (which keeps the decisions and their log for
# accountants): the newest decision naming the account or every account ("*") applies; a CDR is
# locked when its period is closed, or partially closed and the CDR started before the instant.
# The charge stage needs them too: a late CDR of a locked period is booked in the account's open
# period instead (credit.late_in_closed_period), so a closed period's total never moves.

ALL_ACCOUNTS = "*"
OPEN, CLOSED, PARTIAL = "open", "closed", "partial"


class ClosedPeriods:
    """Financial-period decisions as the workers follow them (``financial.periods``)."""

    def __init__(self) -> None:
        self._by: dict[tuple[str, str], tuple[int, str, int]] = {}   # (period, account) -> (version, status, until)

    def apply(self, decision: dict) -> None:
        """One decision ``{account, period, status, closed_until_ms, version}``; older versions
        than the one held are ignored (a compacted topic may replay them)."""
        key = (decision["period"], decision["account"])
        new = (int(decision["version"]), decision["status"], int(decision.get("closed_until_ms") or 0))
        if decision["status"] not in (OPEN, CLOSED, PARTIAL):
            raise ValueError(f"unknown period status {decision['status']!r}")
        old = self._by.get(key)
        if old is None or new[0] >= old[0]:
            self._by[key] = new

    def locked(self, account: str, period: str, start_ms: int) -> bool:
        own = self._by.get((period, account))
        every = self._by.get((period, ALL_ACCOUNTS))
        # Newest wins; on equal versions the account's own decision is the more specific one.
        cands = [(d[0], name != ALL_ACCOUNTS, d) for name, d in ((account, own), (ALL_ACCOUNTS, every)) if d]
        if not cands:
            return False
        _v, _own, (_ver, status, until) = max(cands)
        if status == CLOSED:
            return True
        return status == PARTIAL and start_ms < until

    def __len__(self) -> int:
        return len(self._by)
