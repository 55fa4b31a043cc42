"""Landing is idempotent on both backends: chdb (26.x, in-process) and clickhouse-server 18.16."""
from __future__ import annotations

from decimal import Decimal

import pytest

from sinks.clickhouse import ddl
from sinks.clickhouse.backend import Backend, ChdbBackend, open_backend
from sinks.clickhouse.columns import to_columns
from tests.support.conftest_clickhouse import (  # noqa: F401  (fixtures)
    barring, ch_backend, chdb_backend, clickhouse_url, native_backend, rated, rejected, state,
)

pytestmark = pytest.mark.integration


def land(backend: Backend, table: str, records: list[dict], token: str | None = None) -> None:
    names, cols = to_columns(table, records)
    backend.insert_columns(f"{backend.database}.{table}", names, cols,
                           settings=ddl.insert_settings(backend.version(), token))


def argmax_money(backend: Backend) -> int:
    """Independent of FINAL: the latest rating_version per cdr_key, summed."""
    db = backend.database
    rows = backend.query(f"SELECT toInt64(sum(c)) FROM (SELECT argMax(cost_micros, rating_version) AS c "
                         f"FROM {db}.cdr_rated GROUP BY cdr_key)")
    return int(rows[0][0] or 0)


def test_migrate_is_idempotent(ch_backend):
    assert ddl.migrate(ch_backend) == [n for n, _name, _build in ddl.MIGRATIONS]
    assert ddl.migrate(ch_backend) == []
    rows = ch_backend.query(f"SELECT count() FROM {ch_backend.database}.schema_migrations FINAL")
    assert rows[0][0] == len(ddl.MIGRATIONS)
    assert ddl.landed_counts(ch_backend) == {t: 0 for t in ddl.LANDING_TABLES}
    assert ddl.money_total_micros(ch_backend) == 0


def test_retry_does_not_double_and_rerate_replaces(ch_backend):
    ddl.migrate(ch_backend)
    batch = [rated(i) for i in range(500)]
    rejects = [rejected(i) for i in range(40)]
    bars = [barring(i) for i in range(1, 6)]
    states = [state(i) for i in range(1, 9)]
    expected = sum(r["cost_micros"] for r in batch)

    for _ in range(2):  # the second round is a retry of the very same batch (same tokens)
        land(ch_backend, "cdr_rated", batch, token="cdr.rated:0:0-499")
        land(ch_backend, "cdr_rejected", rejects, token="cdr.rejected:0:0-39")
        land(ch_backend, "barring_events", bars, token="account.barring:0:0-4")
        land(ch_backend, "account_state_history", states, token="account.state:0:0-7")

    counts = ddl.landed_counts(ch_backend)
    assert counts == {"cdr_rated": 500, "cdr_rejected": 40, "barring_events": 5, "account_state_history": 8,
                      "notifications": 0}
    assert ddl.money_total_micros(ch_backend) == expected
    assert argmax_money(ch_backend) == expected

    # A replay under a different token (offsets shifted after a crash) is collapsed by the engine.
    land(ch_backend, "cdr_rated", batch[:100], token="cdr.rated:0:0-99")
    assert ddl.landed_counts(ch_backend)["cdr_rated"] == 500
    assert ddl.money_total_micros(ch_backend) == expected

    # Re-rating raises rating_version: the new cost wins, the old row no longer counts.
    rerated = [rated(7, cost_micros=1, rating_version=2), rated(8, cost_micros=2, rating_version=2)]
    land(ch_backend, "cdr_rated", rerated, token="cdr.rated:1:0-1")
    new_expected = expected - batch[7]["cost_micros"] - batch[8]["cost_micros"] + 3
    assert ddl.landed_counts(ch_backend)["cdr_rated"] == 500
    assert ddl.money_total_micros(ch_backend) == new_expected
    assert argmax_money(ch_backend) == new_expected

    # An older version arriving late never wins.
    land(ch_backend, "cdr_rated", [rated(7, cost_micros=999_999, rating_version=1)], token="late")
    assert ddl.money_total_micros(ch_backend) == new_expected


def test_decimal_money_equals_integer_sum(ch_backend):
    ddl.migrate(ch_backend)
    batch = [rated(i, cost_micros=c) for i, c in enumerate([1, 999_999, 123_456_789, 0, 5, 10**15 + 3])]
    land(ch_backend, "cdr_rated", batch)
    db = ch_backend.database
    (dec_sum, int_sum, nanos_sum), = ch_backend.query(
        f"SELECT sum(cost), toInt64(sum(cost_micros)), toInt64(sum(cost_nanos)) FROM {db}.cdr_rated FINAL")
    independent = sum(r["cost_micros"] for r in batch)
    assert int_sum == independent
    assert Decimal(dec_sum) == Decimal(independent).scaleb(-6)
    assert nanos_sum == sum(r["cost_nanos"] for r in batch)
    # Every row, exactly: Decimal column vs the integer micros it came from.
    rows = ch_backend.query(f"SELECT cost, cost_micros, rate FROM {db}.cdr_rated ORDER BY cdr_key")
    for cost, micros, rate in rows:
        assert Decimal(cost) == Decimal(micros).scaleb(-6)
        assert Decimal(rate) == Decimal("0.012345")


def test_values_round_trip(ch_backend):
    ddl.migrate(ch_backend)
    land(ch_backend, "cdr_rejected", [rejected(1), rejected(2)])
    land(ch_backend, "barring_events", [barring(1), barring(2)])
    land(ch_backend, "cdr_rated", [rated(3)])
    db = ch_backend.database
    rows = ch_backend.query(f"SELECT reject_id, hex(raw), cdr_key, account FROM {db}.cdr_rejected ORDER BY reject_id")
    assert rows == [("r000001", "00FF010A27", None, "acc1"), ("r000002", "00FF020A27", "k2", "acc1")]
    rows = ch_backend.query(f"SELECT seq, allowed_destinations, cause_cdr_key, cause_ingest_ms "
                            f"FROM {db}.barring_events ORDER BY seq")
    assert [(s, list(a), c, m) for s, a, c, m in rows] == [
        (1, ["112", "999"], "k1", None), (2, ["112", "999"], None, 1_793_000_000_000)]
    (secs, month), = ch_backend.query(f"SELECT toUnixTimestamp(start_time), toYYYYMM(start_time) FROM {db}.cdr_rated")
    assert secs == int(rated(3)["start_ms"].timestamp())
    assert month == 202611


def test_ddl_features_match_server(ch_backend):
    ddl.migrate(ch_backend)
    db = ch_backend.database
    (create,), = ch_backend.query(f"SHOW CREATE TABLE {db}.cdr_rated")
    assert "ReplacingMergeTree(rating_version)" in create
    assert "LowCardinality(String)" in create
    if ch_backend.kind == "chdb":
        assert "DateTime64(3, 'UTC')" in create
        assert "non_replicated_deduplication_window" in create
    else:
        assert ch_backend.version() < (19, 0, 0)
        assert "DateTime64" not in create


def test_open_backend_dispatch(tmp_path, clickhouse_url):
    chdb_target = open_backend(f"chdb://{tmp_path / 'x'}")
    try:
        assert isinstance(chdb_target, ChdbBackend) and chdb_target.kind == "chdb"
    finally:
        chdb_target.close()
    native = open_backend(clickhouse_url)
    try:
        assert native.kind == "native"
        assert "cdrflow-test" not in repr(native)  # the fixture's password never shows
        assert native.query("SELECT 1") == [(1,)]
    finally:
        native.close()


def test_chdb_second_path_in_process_is_explained(chdb_backend, tmp_path):
    from sinks.clickhouse.backend import BackendLocked

    with pytest.raises(BackendLocked, match="one data path per process"):
        ChdbBackend(str(tmp_path / "other"))


def test_chdb_path_held_by_other_process(tmp_path):
    """Only one process may open a chdb data path; the error says so."""
    import subprocess
    import sys
    import textwrap

    path = tmp_path / "held"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from sinks.clickhouse.backend import ChdbBackend
        b = ChdbBackend({str(path)!r})
        print("ready", flush=True)
        sys.stdin.read()
        b.close()
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        probe = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
            from sinks.clickhouse.backend import ChdbBackend
            try:
                ChdbBackend({str(path)!r})
            except Exception as exc:
                print(exc)
        """)], capture_output=True, text=True, timeout=120)
        assert "only one process may open a chdb data path" in probe.stdout
    finally:
        holder.stdin.close()
        try:
            holder.wait(timeout=60)
        except subprocess.TimeoutExpired:
            holder.kill()
            holder.wait()
