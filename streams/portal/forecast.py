"""Disconnection forecast and continuous chart axes: pure integer arithmetic, no I/O.

The forecast answers "when will this account reach its hard limit (the credit) at the spend rate
of the last days?". Spend rate = spend of the calls started in the window / window length; the
time left = (credit - spend) / rate, rounded up to the second (never promise more time than the
rate gives). Money stays integer micros throughout.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

BLOCKED = "blocked"          # already at or over the hard limit
NO_SPEND = "no_spend"        # nothing spent in the window: no forecast
AFTER_PERIOD = "after_period"  # the period resets before the limit would be reached
AT = "at"                    # the limit is reached at ``at_s``


@dataclass(frozen=True)
class Forecast:
    kind: str
    at_s: int | None = None
    micros_per_day: int = 0   # the window's average, for display (floored)


def disconnection(spend_micros: int, credit_micros: int, profile: str, window_spend_micros: int,
                  window_s: int, now_s: int, period_end_s: int | None) -> Forecast:
    per_day = window_spend_micros * 86_400 // window_s if window_s > 0 else 0
    if profile == "blocked" or spend_micros >= credit_micros:
        return Forecast(BLOCKED, None, per_day)
    if window_spend_micros <= 0 or window_s <= 0:
        return Forecast(NO_SPEND, None, per_day)
    left = credit_micros - spend_micros
    # ceil(left * window_s / window_spend) without float
    secs = -((-left * window_s) // window_spend_micros)
    at = now_s + secs
    if period_end_s is not None and at >= period_end_s:
        return Forecast(AFTER_PERIOD, at, per_day)
    return Forecast(AT, at, per_day)


def days(first: date, after_last: date) -> list[date]:
    """Every day of [first, after_last): the chart axis, so days without calls show as zero."""
    n = (after_last - first).days
    return [first + timedelta(days=i) for i in range(max(n, 0))]


def month_labels(labels: list[str]) -> list[str]:
    """Every month from the first to the last 'YYYY-MM' label (gaps filled); other labels kept as they are."""
    months = sorted(x for x in labels if len(x) == 7 and x[4] == "-")
    others = sorted(x for x in labels if x not in months)
    if not months:
        return others
    y, m = int(months[0][:4]), int(months[0][5:])
    ly, lm = int(months[-1][:4]), int(months[-1][5:])
    out = []
    while (y, m) <= (ly, lm):
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return sorted(set(out) | set(others))
