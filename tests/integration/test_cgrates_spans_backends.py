"""The ``spans`` column (CGRateS cost breakdown) lands and reads back on chdb 26.x and on
clickhouse-server 18.16, and migration 8 adds it to a cdr_rated created before it existed."""
from __future__ import annotations

import pytest

from sinks.clickhouse import ddl
from sinks.clickhouse.columns import to_columns
from tests.support.conftest_clickhouse import ch_backend, chdb_backend, clickhouse_url, native_backend, rated  # noqa: F401

pytestmark = pytest.mark.integration

SPANS = "1777975200000,60,0.25,60,60,1,0.5,0.25;1777975260000,30,0.12,60,1,30,0,0.06"


def test_spans_land_and_old_tables_are_migrated(ch_backend):
    db = ch_backend.database
    # A database migrated by the previous release: cdr_rated/cdr_commissions without spans.
    ch_backend.execute(ddl.create_database(db))
    ch_backend.execute(ddl.create_schema_migrations(db))
    assert ddl.apply_migrations(ch_backend, db, [m for m in ddl.MIGRATIONS if m[0] < 8])
    cols = f"SELECT count() FROM system.columns WHERE database = '{db}' AND name = 'spans'"
    assert ch_backend.query(cols)[0][0] == 0
    assert ddl.migrate(ch_backend) == [n for n, _name, _build in ddl.MIGRATIONS if n >= 8]   # 9, 10 follow
    assert ch_backend.query(cols)[0][0] == 2

    rows = [{**rated(1), "spans": SPANS}, rated(2)]
    names, cols = to_columns("cdr_rated", rows)
    ch_backend.insert_columns(f"{db}.cdr_rated", names, cols, settings=ddl.insert_settings(ch_backend.version()))
    got = ch_backend.query(f"SELECT cdr_key, spans FROM {db}.cdr_rated FINAL ORDER BY cdr_key")
    assert [tuple(r) for r in got] == [("k000001", SPANS), ("k000002", "")]
    # Analysts can explode it with plain string functions (present in 18.16 too).
    costs = ch_backend.query(
        f"SELECT arrayJoin(splitByChar(';', spans)) AS s FROM {db}.cdr_rated WHERE spans != '' ORDER BY s")
    assert [r[0].split(",")[-1] for r in costs] == ["0.25", "0.06"]
