"""A partial keeps its place in the call on the rated row (issue 11: "Keep partial_seq on the
rated row"): Avro RatedCdr, the cdr_rated columns (migration 10), and a rerate, which must price
a landed partial as its slice of the call again, not as a whole call."""
from __future__ import annotations

import pytest

from sinks.clickhouse import ddl
from sinks.clickhouse.columns import to_columns
from streams import codecs, formats
from streams import rerate as R
from streams.core.charge import rated_record
from streams.msg import Msg
from streams.mediation import Normalizer
from tests.unit.test_partials_pricing import NOW, SOURCES, TARIFF, ts_partial


def _partials() -> list[dict]:
    # 1,360 s of talk from 12:00:10 cut at 600 s and 1,200 s (as test_partials_pricing).
    recs = [ts_partial(1, "251008121010+0200", 600, False), ts_partial(2, "251008122010+0200", 600, False),
            ts_partial(3, "251008122250+0200", 160, True)]
    res = Normalizer(4, SOURCES).run([Msg("cdr.raw", 0, 0, NOW, codecs.encode_container(formats.TS32298, recs))], NOW)
    return sorted((c for v in res.by_partition.values() for c in v), key=lambda c: c["partial_seq"])


def _landed(rated: dict) -> dict:
    """The record as the sink lands it and rerate reads it back: through the RatedCdr Avro
    encoding (what the charge agent sends), keeping only the columns rerate selects."""
    name, back = codecs.decode(codecs.encode("cdr.v1.RatedCdr", rated))
    assert name == "cdr.v1.RatedCdr"
    return {f: back[f] for f in R.ROW_FIELDS}


def _rate(c, plan):
    return TARIFF.rate(c, plan)


# By hand (0.10 connect fee + 0.12 per started minute, per call, rounding up):
#   slice 1: 0.10 + 10 min * 0.12 = 1.30; slice 2: (0.10 + 20 * 0.12) - 1.30 = 1.20;
#   slice 3: (0.10 + 23 * 0.12 = 2.86) - 2.50 = 0.36.  Priced as three calls: 1.30 + 1.30 + 0.46.
SLICES = [1_300_000, 1_200_000, 360_000]
# 12:00:10 +02:00 on 2025-10-08, the call's answer, in UTC epoch ms (calendar arithmetic by hand:
# 2025-10-08T10:00:10Z = 1759917610 s).
ANSWER_MS = 1_759_917_610_000


def test_the_rated_row_carries_partial_seq_and_the_calls_answer():
    parts = _partials()
    rows = [rated_record(c, _rate(c, "default"), "2025-10", NOW) for c in parts]
    assert [r["partial_seq"] for r in rows] == [1, 2, 3]
    assert [r["answer_ms"] for r in rows] == [ANSWER_MS] * 3
    assert [r["cost_micros"] for r in rows] == SLICES
    landed = [_landed(r) for r in rows]
    assert [(r["partial_seq"], r["answer_ms"]) for r in landed] == [(1, ANSWER_MS), (2, ANSWER_MS), (3, ANSWER_MS)]
    names, cols = to_columns("cdr_rated", rows)
    got = dict(zip(names, cols))
    assert got["partial_seq"] == [1, 2, 3] and got["answer_ms"] == [ANSWER_MS] * 3


def test_a_rerated_partial_is_priced_as_its_slice_not_as_a_whole_call():
    parts = _partials()
    landed = [_landed(rated_record(c, _rate(c, "default"), "2025-10", NOW)) for c in parts]
    again = [R.rerated(r, _rate, NOW + 1) for r in landed]
    # Before: rerate rebuilt every partial as partial_seq 0 and answered at its slice's start,
    # so slices 2 and 3 got the connect fee and the first minute again: 1.30, 1.30, 0.46.
    assert [r["cost_micros"] for r in again] == SLICES and sum(r["cost_micros"] for r in again) == 2_860_000
    assert [r["partial_seq"] for r in again] == [1, 2, 3] and all(r["rating_version"] == 2 for r in again)
    assert all(R.priced_equal(a, b) for a, b in zip(landed, again))


def test_a_row_landed_before_migration_10_still_rerates_as_it_was_read():
    # Rows landed earlier have neither column; the select fills the defaults (0, NULL).
    c = _partials()[0]
    old = {**_landed(rated_record(c, _rate(c, "default"), "2025-10", NOW)), "partial_seq": 0, "answer_ms": None}
    assert R.canonical_from_row(old)["answer_ms"] == old["end_ms"] - 600_000
    assert R.rerated(old, _rate, NOW + 1)["cost_micros"] == 1_300_000


@pytest.mark.parametrize("version,guard", [((18, 16, 1), ""), ((26, 9, 2), "IF NOT EXISTS ")])
def test_migration_10_adds_partial_seq_and_answer_ms_gated_for_18_16(version, guard):
    sql = {n: build("db", version) for n, _name, build in ddl.MIGRATIONS}
    for n in (1, 7):
        assert "partial_seq" not in sql[n][0] and "answer_ms" not in sql[n][0]   # their original SQL
    assert sql[10] == [s for t in ("cdr_rated", "cdr_commissions") for s in (
        f"ALTER TABLE `db`.`{t}` ADD COLUMN {guard}partial_seq Int32 DEFAULT 0",
        f"ALTER TABLE `db`.`{t}` ADD COLUMN {guard}answer_ms Nullable(Int64)")]
    assert "partial_seq" in R.select_sql("db", version, accounts=None, from_ms=0, to_ms=1, adjustments=False)
