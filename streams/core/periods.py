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
