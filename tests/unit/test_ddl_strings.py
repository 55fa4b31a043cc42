"""DDL builders as strings: the version gates decide what each server is sent."""
from __future__ import annotations

from sinks.clickhouse import ddl
from sinks.clickhouse.columns import TABLES

OLD = (18, 16, 1)
NEW = (26, 9, 2)


def test_rated_on_modern_server():
    sql = ddl.create_cdr_rated("default", NEW)
    assert sql.startswith("CREATE TABLE IF NOT EXISTS `default`.`cdr_rated` (")
    assert "ENGINE = ReplacingMergeTree(rating_version)" in sql
    assert "PARTITION BY toYYYYMM(start_time)" in sql
    assert "ORDER BY (account, start_time, cdr_key)" in sql
    assert "start_time DateTime64(3, 'UTC')" in sql
    assert "cost Decimal(18, 6)" in sql and "cost_micros Int64" in sql and "cost_nanos Int64" in sql
    assert "rating_version UInt64" in sql
    assert "switch_id LowCardinality(String)" in sql
    assert f"non_replicated_deduplication_window = {ddl.DEDUP_WINDOW_BLOCKS}" in sql


def test_rated_on_18_16():
    sql = ddl.create_cdr_rated("billing", OLD)
    assert "`billing`.`cdr_rated`" in sql
    assert "DateTime64" not in sql
    assert "start_time DateTime('UTC')" in sql
    assert "non_replicated_deduplication_window" not in sql
    assert "SETTINGS index_granularity = 8192" in sql
    assert ddl.session_settings(OLD) == {"allow_experimental_low_cardinality_type": 1}
    assert ddl.session_settings(NEW) == {}


def test_every_column_is_rendered_once():
    for table, build in [("cdr_rated", ddl.create_cdr_rated), ("cdr_rejected", ddl.create_cdr_rejected),
                         ("barring_events", ddl.create_barring_events),
                         ("account_state_history", ddl.create_account_state_history)]:
        sql = build("db", NEW)
        for col in TABLES[table]:
            assert sql.count(f"\n    {col.name} ") == 1, (table, col.name)


def test_rejected_and_history_keys():
    rej = ddl.create_cdr_rejected("db", NEW)
    assert "ORDER BY reject_id" in rej and "PARTITION BY" not in rej
    assert "raw String" in rej and "cdr_key Nullable(String)" in rej
    for build in (ddl.create_barring_events, ddl.create_account_state_history):
        sql = build("db", OLD)
        assert "ENGINE = ReplacingMergeTree\n" in sql and "ORDER BY (account, seq)" in sql
    assert "allowed_destinations Array(String)" in ddl.create_barring_events("db", OLD)


def test_schema_migrations_and_counts():
    assert ddl.create_schema_migrations("db").startswith("CREATE TABLE IF NOT EXISTS `db`.`schema_migrations`")
    assert ddl.applied_versions_sql("db") == "SELECT DISTINCT version FROM `db`.`schema_migrations` ORDER BY version"
    counts = ddl.landed_counts_sql("db")
    assert counts["cdr_rated"] == "SELECT count() FROM `db`.`cdr_rated` FINAL"
    assert set(counts) == set(ddl.LANDING_TABLES)
    assert ddl.money_total_sql("db") == "SELECT toInt64(sum(cost_micros)) FROM `db`.`cdr_rated` FINAL"
    assert [m[0] for m in ddl.MIGRATIONS] == sorted({m[0] for m in ddl.MIGRATIONS})


def test_insert_settings_gates():
    assert ddl.insert_settings(OLD, "tok") == {}
    assert ddl.insert_settings(NEW, "tok") == {"async_insert": 0, "insert_deduplication_token": "tok"}
    assert ddl.insert_settings(NEW) == {"async_insert": 0}
    assert ddl.supports_dedup_token((22, 2, 0)) and not ddl.supports_dedup_token((21, 12, 9))


def test_identifier_quoting():
    assert ddl.q("we`ird") == "`we\\`ird`"
    assert ddl.table_ref("a", "b") == "`a`.`b`"
