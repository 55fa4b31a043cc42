"""Hypothesis properties of rating, plus the benchmark run at a tiny size."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.tariff import parse_tariff_text
from streams.core.tariff.bench import main as bench_main, run as bench_run

SHAPES = {
    "4410": [(0, 60)],
    "4420": [(0, 30), (30, 6)],
    "4430": [(0, 1)],
    "4440": [(0, 60), (60, 6)],
    "4450": [(0, 45), (30, 7), (100, 13)],   # first increment overshoots the second group's start
}

YAML = """
plans:
  default:
    timezone: Europe/Amsterdam
    versions:
      - version: "p1"
        effective_from: "2020-01-01T00:00:00+01:00"
        rounding: {method: up, decimals: 3}
        schedules:
          week:
            default: off_peak
            rules:
              - {period: peak, days: mon-fri, from: "08:00", to: "19:00"}
              - {period: night, days: mon-sun, from: "00:00", to: "02:30"}
            holidays: NL
            holiday_period: off_peak
        destinations:
"""
for p, shape in SHAPES.items():
    gs = ", ".join(f'{{start: {s}, rate: "0.0{i + 3}", unit: 60, increment: {inc}}}' for i, (s, inc) in enumerate(shape))
    ugs = ", ".join(f'{{start: {s}, rate: {{peak: "0.06", off_peak: "0.06", night: "0.06"}}, unit: 60, increment: {inc}}}'
                    for s, inc in shape)
    sgs = ", ".join(f'{{start: {s}, rate: {{peak: "0.09", off_peak: "0.031", night: "0.0007"}}, unit: 60, increment: {inc}}}'
                    for s, inc in shape)
    flat = ", ".join(f'{{start: {s}, rate: "0.06", unit: 60, increment: {inc}}}' for s, inc in shape)
    YAML += f"""
          f{p}: {{prefixes: ["{p}"], connect_fee: "0.013", min_duration: 20, free_seconds: 5, max_cost: "2.5", groups: [{gs}]}}
          i{p}: {{prefixes: ["5{p}"], rounding: {{method: up, decimals: 2, per_increment: true}}, groups: [{gs}]}}
          s{p}: {{prefixes: ["6{p}"], schedule: week, groups: [{sgs}]}}
          si{p}: {{prefixes: ["8{p}"], schedule: week, rounding: {{method: half_even, decimals: 2, per_increment: true}}, groups: [{sgs}]}}
          u{p}: {{prefixes: ["7{p}"], schedule: week, rounding: {{method: half_even, decimals: 6}}, groups: [{ugs}]}}
          n{p}: {{prefixes: ["9{p}"], rounding: {{method: half_even, decimals: 6}}, groups: [{flat}]}}
"""

BOOK = parse_tariff_text(YAML, "<props>", "yaml")
START_2026 = 1_767_222_000_000
instants = st.integers(START_2026, START_2026 + 365 * 86_400_000)
# Bias towards DST days in Amsterdam 2026 (29 Mar, 25 Oct), where splits are subtle.
dst_instants = st.sampled_from([1_774_742_400_000, 1_792_886_400_000]).flatmap(
    lambda base: st.integers(base - 6 * 3_600_000, base + 6 * 3_600_000))
any_instant = st.one_of(instants, dst_instants)
durations = st.integers(0, 4 * 3600)


def call(called: str, answer: int, billsec: int) -> dict:
    return {"direction": "outbound", "called_e164": called, "caller_e164": "+31201234567",
            "called_type": "fixed", "start_ms": answer, "answer_ms": answer,
            "end_ms": answer + billsec * 1000, "duration_s": billsec, "billsec_s": billsec,
            "answered": billsec > 0, "service": "voice"}


def reference_charged(shape: list[tuple[int, int]], priced: int) -> int:
    """One increment at a time: each increment belongs to the group in force at its start."""
    t = 0
    while t < priced:
        inc = [i for s, i in shape if s <= t][-1]
        t += inc
    return t


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from("fisu"), prefix=st.sampled_from(sorted(SHAPES)), at=any_instant,
       d1=durations, extra=st.integers(0, 3600))
def test_cost_never_decreases_with_duration(kind, prefix, at, d1, extra):
    number = {"f": "+", "i": "+5", "s": "+6", "u": "+7"}[kind] + prefix + "123"
    a = BOOK.rate(call(number, at, d1))
    b = BOOK.rate(call(number, at, d1 + extra))
    assert a.cost_nanos <= b.cost_nanos
    assert a.cost_micros <= b.cost_micros
    assert a.charged_s <= b.charged_s


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from("fs"), prefix=st.sampled_from(sorted(SHAPES)), at=any_instant, billsec=durations)
def test_charged_time_is_whole_increments(kind, prefix, at, billsec):
    shape = SHAPES[prefix]
    r = BOOK.rate(call(("+" if kind == "f" else "+6") + prefix + "1", at, billsec))
    if kind == "f":   # min_duration 20, free_seconds 5
        priced = max(billsec, 20) - 5 if billsec > 0 else 0
    else:
        priced = billsec
    assert r.charged_s == reference_charged(shape, priced)
    assert r.charged_s >= priced


@settings(max_examples=300, deadline=None)
@given(prefix=st.sampled_from(sorted(SHAPES)), at=any_instant, billsec=durations)
def test_uniform_rate_split_equals_whole(prefix, at, billsec):
    # Same rate in every period: splitting at period boundaries must not change a nano.
    split = BOOK.rate(call("+7" + prefix + "1", at, billsec))
    whole = BOOK.rate(call("+9" + prefix + "1", at, billsec))
    assert (split.cost_nanos, split.cost_micros, split.charged_s) == (whole.cost_nanos, whole.cost_micros, whole.charged_s)


@settings(max_examples=200, deadline=None)
@given(at=any_instant, a=st.integers(1, 7200), b=st.integers(1, 7200))
def test_per_second_parts_sum_to_whole(at, a, b):
    # 1/1 at a uniform 0.06/min is 1 000 000 nanos a second: two back-to-back parts equal the whole.
    first = BOOK.rate(call("+744301", at, a))
    second = BOOK.rate(call("+744301", at + a * 1000, b))
    whole = BOOK.rate(call("+744301", at, a + b))
    assert first.cost_nanos + second.cost_nanos == whole.cost_nanos == (a + b) * 1_000_000


@settings(max_examples=200, deadline=None)
@given(prefix=st.sampled_from(sorted(SHAPES)), at=any_instant, billsec=durations)
def test_scheduled_per_increment_close_to_per_call(prefix, at, billsec):
    # Rounding each increment half-even to cents moves each by at most half a cent.
    per_call = BOOK.rate(call("+6" + prefix + "1", at, billsec))
    per_inc = BOOK.rate(call("+8" + prefix + "1", at, billsec))
    assert per_call.cost_nanos == per_inc.cost_nanos
    n_inc = per_call.charged_s  # an upper bound on the number of increments
    assert abs(per_inc.cost_micros * 1000 - per_inc.cost_nanos) <= 5_000_000 * max(n_inc, 1)


def test_bench_tiny(capsys):
    res = bench_run(200, 500)
    assert res["cdrs"] == 200 and res["prefixes"] == 500 and res["cdrs_per_s"] > 0
    assert bench_main(["--cdrs", "50", "--prefixes", "100"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"cdrs", "prefixes", "seconds", "cdrs_per_s"}
