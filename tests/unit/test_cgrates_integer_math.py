"""Issue 12, speed of the CGRateS path: integer nano arithmetic and per-day timing tables must
give exactly what the exact-fraction formulas and the direct per-call timing walk give.

(The costs of tests/unit/test_cgrates_import.py are unchanged as well; a digest of 160k random
ratings before/after the change is in the issue note: ``python -m streams.core.tariff.cgr_bench
--digest``.)
"""
from __future__ import annotations

import random
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import pytest

from streams.core.tariff import TariffError, parse_tariff_text
from streams.core.tariff.cgr_engine import DAY_NS, MS_NS, RateGroup, RateInterval, Timing, _Info, _Span
from streams.core.tariff.cgrates import import_cgrates_dir, to_yaml

SHAPES = Path(__file__).resolve().parents[1] / "fixtures" / "cgrates"
ANY = Timing("*any", frozenset(), frozenset(), frozenset(), frozenset(), 0)


def ref_span_cost(rate: Fraction, dur: int, unit: int, inc: int, rd: int) -> Fraction:
    """CGRateS's two-level rounding written with Fractions and the half-up rule (independent
    of the engine): round(rate*dur/unit), then round(that / n) * n, both to rd decimals."""
    def half_up(x: Fraction) -> Fraction:
        p = 10 ** rd
        return Fraction(int((x * p + Fraction(1, 2)) // 1), p)

    whole = half_up(rate * dur / unit)
    n = dur // inc
    return whole if n <= 0 else half_up(whole / n) * n


@pytest.fixture(scope="module")
def data_amsterdam():
    doc = import_cgrates_dir(SHAPES / "shape_tutorial2", timezone="Europe/Amsterdam")
    book = parse_tariff_text(to_yaml(doc), "t2.yaml", "yaml")
    return book.plan("lab.test:call:*any").rater.data


def test_integer_two_level_rounding_matches_fractions(data_amsterdam):
    rnd = random.Random(12)
    units = (1, 1024, 10 ** 9, 60 * 10 ** 9, 7 * 10 ** 9)
    for rd in (0, 2, 4, 5, 6):
        data = type(data_amsterdam)(data_amsterdam.tz, rd, 3, {}, {}, {})
        for _ in range(400):
            rate = Fraction(rnd.randrange(0, 10 ** 7), 10 ** rnd.randrange(0, 8))
            unit, inc = rnd.choice(units), rnd.choice(units)
            g = RateGroup(0, rate, unit, inc)
            ri = RateInterval(ANY, Fraction(10), Fraction(0), (g,), "*up", 4, Fraction(0), "", "RT")
            dur = rnd.choice((1, 999, 10 ** 9, 61 * 10 ** 9, rnd.randrange(1, 4000 * 10 ** 9)))
            span = _Span(0, dur, dur, _Info(0, 0), ri)
            got_g, n, nanos = data.span_cost(span)
            want = ref_span_cost(rate, dur, unit, inc, rd)
            assert (got_g, n, Fraction(nanos, 10 ** 9)) == (g, dur // inc, want), (rate, dur, unit, inc, rd)


def test_day_tables_match_the_direct_walk(data_amsterdam, monkeypatch):
    # Every rate-interval list of the plan, at random instants and lengths within a local day,
    # including the two DST days of 2026 (29 March, 25 October: 23 h and 25 h long).
    data = data_amsterdam
    rils = [ril for rp in data.rating_plans.values() for ril in rp.values()]
    rnd = random.Random(5)
    starts = [int(datetime(2026, m, d, tzinfo=timezone.utc).timestamp()) * 1000 * MS_NS
              for m, d in ((3, 28), (3, 29), (3, 30), (10, 24), (10, 25), (6, 1), (12, 25))]
    cases = []
    for _ in range(600):
        a = rnd.choice(starts) + rnd.randrange(0, DAY_NS // 10 ** 9) * 10 ** 9
        day = data._day(a)
        b = min(a + rnd.randrange(1, 20_000) * 10 ** 9, day[1])
        cases.append((a, b, rnd.choice(rils)))
    fast = [data._by_timing(a, b, ril) for a, b, ril in cases]
    monkeypatch.setattr(data, "_timing_table", lambda day, ril: False)
    slow = [data._by_timing(a, b, ril) for a, b, ril in cases]
    assert fast == slow
    assert any(len(p) > 1 for p in fast)   # the cases do cross timing changes


def test_days_tile_time(data_amsterdam):
    # Local days found through the per-UTC-day cache are contiguous across DST changes.
    data = data_amsterdam
    ns = int(datetime(2026, 3, 27, tzinfo=timezone.utc).timestamp()) * 10 ** 9
    lengths = []
    for _ in range(5):
        a, b, d = data._day(ns)
        assert data.local(a).date() == d and data.local(a).hour == 0
        lengths.append((b - a) // 3_600_000_000_000)
        ns = b
    assert lengths[:3] == [24, 24, 23] or lengths[1:4] == [24, 23, 24]


def test_fee_beyond_nanos_is_refused():
    # The importer refuses a ConnectFee with more than 6 decimals; a hand-edited document with
    # more than 9 is refused when built (the engine's money is whole nanos).
    doc = import_cgrates_dir(SHAPES / "shape_testit")
    c = doc["cgrates"]
    rid = next(iter(c["rates"]))
    c["rates"][rid][0]["connect_fee"] = "0.0000000001"
    with pytest.raises(TariffError, match="more than 9 decimals"):
        parse_tariff_text(to_yaml(doc), "x.yaml", "yaml")
