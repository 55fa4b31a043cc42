"""Migration 10 adds ``partial_seq`` and ``answer_ms`` to a cdr_rated created before it, on chdb
26.x and on clickhouse-server 18.16; landed partials read back through rerate's own select and
are priced again as their slices of the call (issue 11)."""
from __future__ import annotations

import pytest

from sinks.clickhouse import ddl
from streams import rerate as R
from streams.core.charge import rated_record
from tests.support.conftest_clickhouse import ch_backend, chdb_backend, clickhouse_url, native_backend  # noqa: F401
from tests.unit.test_partials_landing import ANSWER_MS, NOW, SLICES, _partials, _rate

pytestmark = pytest.mark.integration


def test_partials_land_read_back_and_rerate_as_slices(ch_backend):
    db = ch_backend.database
    # A database migrated by the previous release: no partial_seq / answer_ms columns.
    ch_backend.execute(ddl.create_database(db))
    ch_backend.execute(ddl.create_schema_migrations(db))
    assert ddl.apply_migrations(ch_backend, db, [m for m in ddl.MIGRATIONS if m[0] < 10])
    cols = f"SELECT count() FROM system.columns WHERE database = '{db}' AND name IN ('partial_seq', 'answer_ms')"
    assert ch_backend.query(cols)[0][0] == 0
    assert ddl.migrate(ch_backend) == [n for n, _name, _build in ddl.MIGRATIONS if n >= 10]   # 11 follows
    assert ch_backend.query(cols)[0][0] == 4                     # cdr_rated and cdr_commissions

    rows = [rated_record(c, _rate(c, "default"), "2025-10", NOW) for c in _partials()]
    assert R.write_rows(ch_backend, rows) == 3
    landed, adjs = R.load_rows(ch_backend, accounts=None, from_ms=0, to_ms=NOW * 2)
    assert adjs == [] and sorted((r["partial_seq"], r["answer_ms"], r["cost_micros"]) for r in landed) == [
        (1, ANSWER_MS, SLICES[0]), (2, ANSWER_MS, SLICES[1]), (3, ANSWER_MS, SLICES[2])]
    again = sorted((R.rerated(r, _rate, NOW + 1) for r in landed), key=lambda r: r["partial_seq"])
    assert [r["cost_micros"] for r in again] == SLICES
