"""Partial records are charged exactly as the whole call (issue 11: three partials of one call
were billed 3.03 where the call costs 2.81)."""
from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from streams import codecs, formats
from streams.core.partials import merge, seconds_before
from streams.core.sources import SourceDirectory
from streams.core.tariff import parse_tariff_text
from streams.mediation import Normalizer
from streams.msg import Msg
from tests.unit.test_rating_properties import BOOK, SHAPES, any_instant, call

NOW = 1_760_000_000_000
SOURCES = SourceDirectory.from_dict({"default": {"country": "NL", "timezone": "Europe/Amsterdam"}})
TARIFF = parse_tariff_text("""
plans:
  default:
    timezone: Europe/Amsterdam
    versions:
      - version: "v1"
        effective_from: "2020-01-01T00:00:00+01:00"
        rounding: {method: up, decimals: 4}
        destinations:
          nl_fixed: {prefixes: ["3120"], connect_fee: "0.10", groups: [{start: 0, rate: "0.12", unit: 60, increment: 60}]}
""", "<partials>", "yaml")


def ts_partial(seq: int, release: str, secs: int, final: bool) -> dict:
    """A TS 32.298 moCallRecord partial: seizure 12:00:00, answer 12:00:10 (+02:00) on every one."""
    return {"switch_id": "msc-1", "record_type": "moCallRecord", "served_msisdn": "31612345678",
            "served_imsi": "204081234567890", "called_number": "+31201234567", "seizure_time": "251008120000+0200",
            "answer_time": "251008120010+0200", "release_time": release, "call_duration": secs,
            "cause_for_term": 0 if final else 1, "record_sequence_number": seq, "call_reference": "0a1b2c",
            "msc_outgoing_tkgp": "tg-ams"}


def test_three_partials_cost_what_the_whole_call_costs():
    # 1,360 s of talk from 12:00:10 cut at 600 s and 1,200 s.
    recs = [ts_partial(1, "251008121010+0200", 600, False), ts_partial(2, "251008122010+0200", 600, False),
            ts_partial(3, "251008122250+0200", 160, True)]
    res = Normalizer(4, SOURCES).run([Msg("cdr.raw", 0, 0, NOW, codecs.encode_container(formats.TS32298, recs))], NOW)
    parts = sorted((c for v in res.by_partition.values() for c in v), key=lambda c: c["partial_seq"])
    assert [seconds_before(c) for c in parts] == [0, 600, 1200]
    got = [TARIFF.rate(c).cost_micros for c in parts]
    # By hand, 0.10 connect fee + 0.12 per started minute, per call:
    #   whole call: 0.10 + 23 min * 0.12 = 2.86
    #   slice 1: 0.10 + 10 * 0.12 = 1.30; slice 2: (0.10 + 20 * 0.12) - 1.30 = 1.20; slice 3: 2.86 - 2.50 = 0.36
    # (priced as three calls it was 1.30 + 1.30 + 0.46 = 3.06)
    assert got == [1_300_000, 1_200_000, 360_000] and sum(got) == 2_860_000
    whole = merge(parts)
    assert whole["billsec_s"] == 1360 and whole["complete"] and whole["duration_s"] == 1370
    assert TARIFF.rate({**whole, "partial_seq": 0, "answered": True}).cost_micros == 2_860_000


DESTS = [f"+{pre}{p}1234567" for p in SHAPES for pre in ("", "5", "6", "7", "8", "9")]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(DESTS), any_instant, st.integers(1, 4 * 3600), st.lists(st.integers(1, 3600), min_size=1, max_size=6),
       st.randoms(use_true_random=False))
def test_partials_sum_to_the_whole_call_for_every_rule(called, answer, total, cuts, rnd):
    """Connect fee, minimum, free seconds, max cost, per-call and per-increment rounding (up,
    half-even), multi-group increments and peak/off-peak/night schedules across DST days:
    the slices' charges telescope to the whole call's, exactly, and none is negative."""
    bounds = sorted({c for c in cuts if c < total})
    edges = [0, *bounds, total]
    slices = []
    for seq, (a, b) in enumerate(zip(edges, edges[1:]), 1):
        c = call(called, answer, b - a)
        c.update(partial_seq=seq, start_ms=answer, answer_ms=answer, end_ms=answer + b * 1000, duration_s=b,
                 billsec_s=b - a, answered=True)
        slices.append(c)
    rnd.shuffle(slices)  # any arrival order
    whole = BOOK.rate(call(called, answer, total))
    rated = [BOOK.rate(c) for c in slices]
    assert all(r.cost_nanos >= 0 and r.cost_micros >= 0 for r in rated)
    assert sum(r.cost_micros for r in rated) == whole.cost_micros
    assert sum(r.cost_nanos for r in rated) == whole.cost_nanos
    assert sum(r.charged_s for r in rated) == whole.charged_s
    assert sum(r.connect_fee_micros for r in rated) == whole.connect_fee_micros
    assert Decimal(sum(r.cost_micros for r in rated)) / 1_000_000 == Decimal(whole.cost_micros) / 1_000_000
