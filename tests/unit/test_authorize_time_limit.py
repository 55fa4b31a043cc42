"""Property (issue 10 hole 2): the prepaid time limit is the longest duration whose full rated
cost — the pipeline's own rater, every tariff rule — fits in what is left:
cost(limit) <= left < cost(limit + 1), for random tariffs and credits."""
from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core import authorize as A
from streams.core.tariff import parse_tariff_text

T = int(datetime(2026, 3, 10, 10, 0, tzinfo=timezone.utc).timestamp()) * 1000
CAP = 7200


def money(micros: int) -> str:
    return f"{micros // 1_000_000}.{micros % 1_000_000:06d}"


@st.composite
def tariffs(draw):
    inc0 = draw(st.sampled_from([1, 6, 30, 60]))
    groups = [f'{{start: 0, rate: "{money(draw(st.integers(0, 3_000_000)))}", unit: 60, increment: {inc0}}}']
    if draw(st.booleans()):
        start = draw(st.sampled_from([30, 60, 120]))
        inc1 = draw(st.sampled_from([1, 6, 10]))
        groups.append(f'{{start: {start}, rate: "{money(draw(st.integers(0, 3_000_000)))}", unit: 60, increment: {inc1}}}')
    opts = [f'connect_fee: "{money(draw(st.integers(0, 2_000_000)))}"',
            f"min_duration: {draw(st.integers(0, 120))}", f"free_seconds: {draw(st.integers(0, 60))}"]
    if draw(st.integers(0, 3)) == 0:
        opts.append(f'max_cost: "{money(draw(st.integers(1, 30_000_000)))}"')
    method = draw(st.sampled_from(["up", "down", "half_even"]))
    decimals = draw(st.integers(0, 6))
    per_inc = draw(st.booleans())
    text = f"""
plans:
  p:
    timezone: Europe/Amsterdam
    versions:
      - version: "v1"
        effective_from: "2026-01-01T00:00:00+01:00"
        rounding: {{method: {method}, decimals: {decimals}, per_increment: {str(per_inc).lower()}}}
        destinations:
          d:
            prefixes: ["44"]
            {chr(10).join('            ' + o for o in opts).lstrip()}
            groups: [{", ".join(groups)}]
"""
    return parse_tariff_text(text, "prop.yaml", "yaml")


def rated(book, seconds: int) -> int:
    cdr = {"direction": "outbound", "called_e164": "+442071234567", "called_type": "fixed", "caller_e164": "",
           "trunk": "", "stage": "", "start_ms": T, "answer_ms": T, "end_ms": T + seconds * 1000,
           "billsec_s": seconds, "duration_s": seconds, "answered": True, "service": "voice"}
    return book.rate(cdr, "p").cost_micros


@settings(max_examples=200, deadline=None)
@given(book=tariffs(), left=st.one_of(st.integers(0, 3_000_000), st.integers(2_000_000, 60_000_000)))
def test_limit_is_the_longest_affordable_duration(book, left):
    q = A.quote(book, "p", "+442071234567", "fixed", T)
    limit = A.time_limit(q.cost, left, CAP)
    if limit == 0:
        assert rated(book, 1) > left
    else:
        assert rated(book, limit) <= left
    if limit < CAP:
        assert rated(book, limit + 1) > left


@settings(max_examples=100, deadline=None)
@given(book=tariffs(), a=st.integers(1, CAP), b=st.integers(1, CAP))
def test_rated_cost_never_falls_as_the_call_grows(book, a, b):
    """Why the binary search is exact: cost is monotonic in the duration for every tariff rule."""
    lo, hi = sorted((a, b))
    assert rated(book, lo) <= rated(book, hi)
