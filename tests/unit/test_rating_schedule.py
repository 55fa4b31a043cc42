"""Peak/off-peak, weekend, holiday and DST splits (Europe/Amsterdam). Instants written in UTC
by hand so the expectations do not depend on the zone arithmetic under test."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, ROUND_UP, Decimal

import pytest

from streams.core.tariff import parse_tariff_text

D = Decimal
PEAK, OFF, WEEKEND, HOLIDAY = D("0.01"), D("0.005"), D("0.002"), D("0.001")   # per second
NIGHT, DAY = D("0.001"), D("0.01")


def utc_ms(*a: int) -> int:
    return int(datetime(*a, tzinfo=timezone.utc).timestamp()) * 1000


def micros(d: Decimal) -> int:
    return int((d * 1_000_000).quantize(D(1), rounding=ROUND_HALF_EVEN))


YAML = """
plans:
  default:
    timezone: Europe/Amsterdam
    versions:
      - version: "s1"
        effective_from: "2026-01-01T00:00:00+01:00"
        schedules:
          week:
            default: off_peak
            rules:
              - {period: peak, days: mon-fri, from: "08:00", to: "19:00"}
              - {period: weekend, days: [sat, sun], from: "00:00", to: "24:00"}
            holidays: NL
            holiday_period: holiday
          night:
            default: day
            rules: [{period: night, days: mon-sun, from: "00:00", to: "04:00"}]
        destinations:
          sec:
            prefixes: ["31"]
            schedule: week
            groups: [{start: 0, rate: {peak: "0.60", off_peak: "0.30", weekend: "0.12", holiday: "0.06"}, unit: 60, increment: 1}]
          minute:
            prefixes: ["32"]
            schedule: week
            groups: [{start: 0, rate: {peak: "0.60", off_peak: "0.30", weekend: "0.12", holiday: "0.06"}, unit: 60, increment: 60}]
          minute_inc:
            prefixes: ["33"]
            schedule: week
            rounding: {method: up, decimals: 1, per_increment: true}
            groups: [{start: 0, rate: {peak: "0.60", off_peak: "0.30", weekend: "0.12", holiday: "0.06"}, unit: 60, increment: 60}]
          thirty_six:
            prefixes: ["34"]
            schedule: week
            connect_fee: "0.07"
            groups:
              - {start: 0, rate: {peak: "0.60", off_peak: "0.30", weekend: "0.12", holiday: "0.06"}, unit: 60, increment: 30}
              - {start: 30, rate: {peak: "0.60", off_peak: "0.30", weekend: "0.12", holiday: "0.06"}, unit: 60, increment: 6}
          nights:
            prefixes: ["35"]
            schedule: night
            groups: [{start: 0, rate: {night: "0.06", day: "0.60"}, unit: 60, increment: 1}]
"""


@pytest.fixture(scope="module")
def book():
    return parse_tariff_text(YAML, "<sched>", "yaml")


def call(called: str, answer_ms: int, billsec: int) -> dict:
    return {"direction": "outbound", "called_e164": called, "caller_e164": "+31201234567",
            "called_type": "fixed", "start_ms": answer_ms - 2000, "answer_ms": answer_ms,
            "end_ms": answer_ms + billsec * 1000, "duration_s": billsec + 2, "billsec_s": billsec,
            "answered": True, "service": "voice"}


CASES = [
    # Tue 2026-03-10 18:59 CET = 17:59 UTC: 60 s peak then 60 s off-peak
    ("peak->off-peak", "+3120", utc_ms(2026, 3, 10, 17, 59), 120, 120, 60 * PEAK + 60 * OFF),
    # Tue 07:59:30 CET: 30 s off-peak then peak
    ("off-peak->peak", "+3120", utc_ms(2026, 3, 10, 6, 59, 30), 90, 90, 30 * OFF + 60 * PEAK),
    # Fri 2026-03-13 23:59 CET = 22:59 UTC: midnight into the weekend
    ("midnight", "+3120", utc_ms(2026, 3, 13, 22, 59), 120, 120, 60 * OFF + 60 * WEEKEND),
    # Sun 2026-03-15 23:59 CET into Monday off-peak, then 08:00 peak is not reached
    ("weekend->monday", "+3120", utc_ms(2026, 3, 15, 22, 59), 120, 120, 60 * WEEKEND + 60 * OFF),
    # King's Day Mon 2026-04-27 10:00 CEST = 08:00 UTC: a holiday is off-peak all day
    ("holiday", "+3120", utc_ms(2026, 4, 27, 8, 0), 60, 60, 60 * HOLIDAY),
    # Sun 2026-04-26 23:59:30 CEST = 21:59:30 UTC into King's Day
    ("into holiday", "+3120", utc_ms(2026, 4, 26, 21, 59, 30), 60, 60, 30 * WEEKEND + 30 * HOLIDAY),
    # 60/60 increment straddling 19:00: the charged seconds past the end still follow the clock
    ("straddle 60/60", "+3220", utc_ms(2026, 3, 10, 17, 59, 30), 45, 60, 30 * PEAK + 30 * OFF),
    # 30/6 with fee; increments count from the call's start, not from the boundary (18:59:50)
    ("30/6 from start", "+3420", utc_ms(2026, 3, 10, 17, 59, 50), 31, 36, D("0.07") + 10 * PEAK + 26 * OFF),
    # DST spring 2026-03-29: 04:00 CEST = 02:00 UTC (not 03:00)
    ("spring after jump", "+3520", utc_ms(2026, 3, 29, 1, 30), 3600, 3600, 1800 * NIGHT + 1800 * DAY),
    # 01:30 CET = 00:30 UTC, one hour across the jump: ends 03:30 CEST, all night
    ("spring across jump", "+3520", utc_ms(2026, 3, 29, 0, 30), 3600, 3600, 3600 * NIGHT),
    # DST autumn 2026-10-25: 04:00 CET = 03:00 UTC
    ("autumn after fallback", "+3520", utc_ms(2026, 10, 25, 2, 30), 3600, 3600, 1800 * NIGHT + 1800 * DAY),
    # Sat 23:30 CEST (21:30 UTC) for 6 h: 30 min day, local 00:00-04:00 = 22:00-03:00 UTC (5 h, the
    # 25-hour day), then 30 min day
    ("autumn long night", "+3520", utc_ms(2026, 10, 24, 21, 30), 21600, 21600, 18000 * NIGHT + 3600 * DAY),
    # spring night lasts only 3 h: local 00:00-04:00 = 23:00-02:00 UTC
    ("spring short night", "+3520", utc_ms(2026, 3, 28, 22, 30), 4 * 3600, 4 * 3600, 3 * 3600 * NIGHT + 3600 * DAY),
]


@pytest.mark.parametrize("name,called,answer,billsec,charged,cost", CASES, ids=[c[0] for c in CASES])
def test_schedule_split(book, name, called, answer, billsec, charged, cost):
    r = book.rate(call(called, answer, billsec))
    assert r.charged_s == charged
    assert r.cost_nanos == int(cost * 1_000_000_000)
    assert r.cost_micros == micros(cost)


def test_rate_reported_is_the_period_at_answer(book):
    assert book.rate(call("+3120", utc_ms(2026, 3, 10, 17, 59), 120)).rate_micros == 600_000
    assert book.rate(call("+3120", utc_ms(2026, 3, 10, 18, 0), 120)).rate_micros == 300_000
    assert book.max_rate_per_min_micros("default", "+3120", utc_ms(2026, 3, 10, 18, 0)) == 600_000


def test_per_increment_rounding_with_a_straddling_increment(book):
    # 18:58:30 CET, 150 s at 60/60 = 3 increments: [18:58:30, 18:59:30) peak 0.60,
    # [18:59:30, 19:00:30) half peak half off-peak = 0.45 -> 0.5, [19:00:30, ..) off-peak 0.30
    r = book.rate(call("+3320", utc_ms(2026, 3, 10, 17, 58, 30), 150))
    each = [D("0.60"), (30 * PEAK + 30 * OFF).quantize(D("0.1"), rounding=ROUND_UP), D("0.30")]
    assert r.cost_micros == micros(sum(each))
    assert r.cost_nanos == int((60 * PEAK + 30 * PEAK + 30 * OFF + 60 * OFF) * 10**9)


def test_unanswered_scheduled_call(book):
    c = call("+3120", utc_ms(2026, 3, 10, 17, 59), 0)
    c["answered"], c["answer_ms"] = False, None
    r = book.rate(c)
    assert (r.cost_micros, r.charged_s, r.rate_micros) == (0, 0, 600_000)
