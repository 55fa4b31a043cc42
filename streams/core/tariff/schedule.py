"""Time-of-day / weekday / holiday periods in a tariff's time zone, as UTC instants.

Rules are written in local wall-clock time, but a call is a span of UTC instants. Each local
date is turned once into UTC chunks ``(start_ms, end_ms, period)``: its own midnight to the
next midnight, cut at the rule boundaries, each boundary converted with zoneinfo. A DST day
is therefore 23 or 25 hours long by construction. Wall times that do not exist (spring
forward) resolve with ``fold=0`` and are clamped so chunks never run backwards.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MS = timedelta(milliseconds=1)
_DAY = timedelta(days=1)
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CACHE_MAX = 8192


class Schedule:
    __slots__ = ("name", "tz", "periods", "default", "rules", "holiday_period", "_holidays",
                 "_days", "__weakref__")

    def __init__(self, name: str, tz_name: str, periods: tuple[str, ...], default: int,
                 rules: list[tuple[frozenset[int], int, int, int]],
                 holidays_obj: object | None = None, holiday_period: int | None = None):
        """``rules``: (weekdays 0=Mon, from_minute, to_minute, period id), non-overlapping."""
        self.name = name
        self.tz = ZoneInfo(tz_name)
        self.periods = periods
        self.default = default
        self.rules = sorted(rules, key=lambda r: r[1])
        self.holiday_period = holiday_period
        self._holidays = holidays_obj
        self._days: dict[date, tuple[tuple[int, int, int], ...]] = {}

    def _local_ms(self, d: date, minute: int) -> int:
        if minute >= 1440:
            d, minute = d + _DAY, minute - 1440
        dt = datetime(d.year, d.month, d.day, minute // 60, minute % 60, tzinfo=self.tz)
        return (dt - EPOCH) // _MS

    def day(self, d: date) -> tuple[tuple[int, int, int], ...]:
        """UTC chunks covering local date ``d`` from its midnight to the next."""
        got = self._days.get(d)
        if got is not None:
            return got
        if self._holidays is not None and self.holiday_period is not None and d in self._holidays:
            cuts = [(0, self.holiday_period)]
        else:
            wd = d.weekday()
            cuts = []
            t = 0
            for days, lo, hi, pid in self.rules:
                if wd not in days:
                    continue
                if lo > t:
                    cuts.append((t, self.default))
                cuts.append((lo, pid))
                t = hi
            if t < 1440:
                cuts.append((t, self.default))
        out: list[tuple[int, int, int]] = []
        prev = self._local_ms(d, 0)
        bounds = [max(prev, self._local_ms(d, m)) for m, _ in cuts[1:]] + [self._local_ms(d, 1440)]
        for (_, pid), end in zip(cuts, bounds):
            end = max(end, prev)
            if end > prev:
                if out and out[-1][2] == pid:
                    out[-1] = (out[-1][0], end, pid)
                else:
                    out.append((prev, end, pid))
            prev = end
        res = tuple(out)
        if len(self._days) >= _CACHE_MAX:
            self._days.clear()
        self._days[d] = res
        return res

    def local_date(self, ms: int) -> date:
        return datetime.fromtimestamp(ms // 1000, self.tz).date()

    def chunks(self, a_ms: int, b_ms: int) -> list[tuple[int, int, int]]:
        """Chunks ``(start, end, period)`` exactly covering ``[a_ms, b_ms)``."""
        out: list[tuple[int, int, int]] = []
        d = self.local_date(a_ms)
        while True:
            day = self.day(d)
            for s, e, pid in day:
                if e <= a_ms:
                    continue
                if s >= b_ms:
                    return out
                out.append((max(s, a_ms), min(e, b_ms), pid))
            if not day or day[-1][1] >= b_ms:
                return out
            d += _DAY

    def period_at(self, ms: int) -> int:
        for s, e, pid in self.day(self.local_date(ms)):
            if s <= ms < e:
                return pid
        return self.default
