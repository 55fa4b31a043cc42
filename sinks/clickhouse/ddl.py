"""ClickHouse DDL for cdrflow, gated on the server version, and versioned migrations.

The builders are pure functions returning SQL strings (tests/unit/test_ddl_strings.py checks
them as strings); only ``migrate``, ``landed_counts`` and ``money_total_micros`` touch a backend.

Two servers matter: chdb 4.4 (ClickHouse 26.9) locally and Debian clickhouse-server 18.16 in
the native-protocol tests. 18.16 lacks DateTime64, the non-replicated dedup window and insert
dedup tokens, and only has LowCardinality behind ``allow_experimental_low_cardinality_type``.
"""
from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable

from sinks.clickhouse.columns import TABLES

if TYPE_CHECKING:
    from sinks.clickhouse.backend import Backend

log = logging.getLogger(__name__)

Version = tuple[int, int, int]

# Feature gates. Each is the first release that has the feature as a stable, default-on thing.
LOW_CARDINALITY_STABLE = (19, 0, 0)
DATETIME64 = (20, 1, 0)
NON_REPLICATED_DEDUP_WINDOW = (20, 10, 0)
INSERT_DEDUP_TOKEN = (22, 2, 0)
# 18.16 refuses "ADD COLUMN IF NOT EXISTS" (syntax error, measured); every 20.x and later has it.
ALTER_ADD_COLUMN_IF_NOT_EXISTS = (20, 1, 0)

# Enough blocks to cover every batch a crashed sink could retry, and then some.
DEDUP_WINDOW_BLOCKS = 10_000


def supports_dedup_token(version: Version) -> bool:
    return tuple(version) >= INSERT_DEDUP_TOKEN


def session_settings(version: Version) -> dict:
    """Settings a connection needs for this DDL to be accepted and its tables to be written."""
    if tuple(version) < LOW_CARDINALITY_STABLE:
        # 18.x ships LowCardinality as experimental; with the flag it works for create and insert.
        return {"allow_experimental_low_cardinality_type": 1}
    return {}


def insert_settings(version: Version, token: str | None = None) -> dict:
    """Per-insert settings: synchronous inserts, and the dedup token where the server has one."""
    settings: dict = {}
    if tuple(version) >= (20, 0, 0):
        # chdb defaults async_insert to 1: a batch must be durable before its offsets commit.
        settings["async_insert"] = 0
    if token and supports_dedup_token(version):
        settings["insert_deduplication_token"] = token
    return settings


def column_type(kind: str, version: Version) -> str:
    v = tuple(version)
    time = "DateTime64(3, 'UTC')" if v >= DATETIME64 else "DateTime('UTC')"
    return {
        "str": "String",
        # Always LowCardinality; on 18.x session_settings() turns on the experimental flag.
        "lc_str": "LowCardinality(String)",
        "nstr": "Nullable(String)",
        "bytes": "String",
        "i32": "Int32",
        "i64": "Int64",
        "ni64": "Nullable(Int64)",
        "u64": "UInt64",
        "bool": "UInt8",
        "time": time,
        "money": "Decimal(18, 6)",
        "strs": "Array(String)",
    }[kind]


def q(name: str) -> str:
    """Backquoted identifier (database or table)."""
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def table_ref(database: str, table: str) -> str:
    return f"{q(database)}.{q(table)}"


# Columns a later migration adds to a table (column -> migration number). The CREATE of an older
# migration leaves them out, so that migration keeps sending the SQL it always sent and the
# later ALTER adds them on old and fresh databases alike (18.16 has no ADD COLUMN IF NOT EXISTS).
ADDED_BY_MIGRATION = {"spans": 8, "currency": 9, "partial_seq": 10, "answer_ms": 10}


def _columns_sql(table: str, version: Version, as_of: int | None = None) -> str:
    cols = [c for c in TABLES[table] if as_of is None or ADDED_BY_MIGRATION.get(c.name, 0) <= as_of]
    return ",\n    ".join(f"{c.name} {column_type(c.kind, version)}" for c in cols)


def _settings_sql(version: Version) -> str:
    parts = ["index_granularity = 8192"]
    if tuple(version) >= NON_REPLICATED_DEDUP_WINDOW:
        # Without a window a plain MergeTree ignores insert_deduplication_token, and a retried
        # batch would land twice until a merge collapses it.
        parts.append(f"non_replicated_deduplication_window = {DEDUP_WINDOW_BLOCKS}")
    return "SETTINGS " + ", ".join(parts)


def create_database(database: str) -> str:
    return f"CREATE DATABASE IF NOT EXISTS {q(database)}"


def create_schema_migrations(database: str) -> str:
    # ReplacingMergeTree: two sinks migrating at once may both record a version; it collapses.
    return (f"CREATE TABLE IF NOT EXISTS {table_ref(database, 'schema_migrations')} (\n"
            "    version UInt32,\n    name String,\n    applied_at DateTime('UTC'),\n    server_version String\n"
            ") ENGINE = ReplacingMergeTree\nORDER BY version")


def _replacing_table(database: str, version: Version, table: str, order_by: str, *, version_column: str = "",
                     partition_by: str = "", columns_of: str = "", as_of: int | None = None) -> str:
    """CREATE TABLE for a landing table: every one is a ReplacingMergeTree, so a replayed row
    collapses with its first landing; they differ only in keys, partitioning and version column."""
    engine = f"ReplacingMergeTree({version_column})" if version_column else "ReplacingMergeTree"
    partition = f"PARTITION BY {partition_by}\n" if partition_by else ""
    return (f"CREATE TABLE IF NOT EXISTS {table_ref(database, table)} (\n"
            f"    {_columns_sql(columns_of or table, version, as_of)}\n"
            f") ENGINE = {engine}\n"
            f"{partition}ORDER BY {order_by}\n"
            f"{_settings_sql(version)}")


def create_cdr_rated(database: str, version: Version, as_of: int | None = None) -> str:
    # ORDER BY (account, start_time, cdr_key): an itemised bill reads one account's calls in time
    # order, so that prefix makes it a range scan; cdr_key last makes the sorting key unique per
    # CDR, which is what lets ReplacingMergeTree collapse replays and keep the highest
    # rating_version. start_time is part of the CDR (never wall clock), so a replay lands in the
    # same monthly partition and collapses there (RMT never merges across partitions).
    return _replacing_table(database, version, "cdr_rated", "(account, start_time, cdr_key)",
                            version_column="rating_version", partition_by="toYYYYMM(start_time)", as_of=as_of)


def create_cdr_rejected(database: str, version: Version) -> str:
    # No time partition: rejected_at is wall clock at the worker, so a redelivered reject could
    # fall into another partition and never collapse. reject_id alone identifies it.
    return _replacing_table(database, version, "cdr_rejected", "reject_id")


def create_barring_events(database: str, version: Version) -> str:
    # (account, seq) is the transition's identity (event_id = account:period:seq is stable across
    # replays) and also the order in which a controller's history is read.
    return _replacing_table(database, version, "barring_events", "(account, seq)")


def create_account_state_history(database: str, version: Version, as_of: int | None = None) -> str:
    # Every state snapshot of an account, keyed like the barring history so replays collapse.
    return _replacing_table(database, version, "account_state_history", "(account, seq)", as_of=as_of)


def create_notifications(database: str, version: Version) -> str:
    # notification_id is stable across replays (account:user:period:threshold or the limit's
    # seq), so a re-sent notification collapses; account first for "what did this customer get".
    return _replacing_table(database, version, "notifications", "(account, notification_id)")


def create_cdr_commissions(database: str, version: Version, as_of: int | None = None) -> str:
    # Same shape and keys as cdr_rated (the commission of one CDR per partner and rating version),
    # kept apart so that no bill or spend query can ever include the partner's share.
    return _replacing_table(database, version, "cdr_commissions", "(account, start_time, cdr_key)",
                            version_column="rating_version", partition_by="toYYYYMM(start_time)",
                            columns_of="cdr_rated", as_of=as_of)


def add_spans_column(database: str, version: Version) -> list[str]:
    # The CGRateS cost breakdown (migrations 1 and 7 create the tables without it). String,
    # not Array(Tuple): one insert path for 18.16's native protocol and chdb's Arrow input.
    # Where the server has IF NOT EXISTS a crash between this ALTER and its record is repaired
    # by re-running migrate; on older servers (18.16) that rare case needs the record by hand.
    col = next(c for c in TABLES["cdr_rated"] if c.name == "spans")
    guard = "IF NOT EXISTS " if tuple(version) >= ALTER_ADD_COLUMN_IF_NOT_EXISTS else ""
    return [f"ALTER TABLE {table_ref(database, t)} ADD COLUMN {guard}spans {column_type(col.kind, version)} "
            f"DEFAULT ''" for t in ("cdr_rated", "cdr_commissions")]


def add_currency_column(database: str, version: Version) -> list[str]:
    # The rated row's and the account's currency (streams/core/currency.py); rows landed before read "".
    # Gated like migration 8: 18.16 refuses IF NOT EXISTS.
    col = next(c for c in TABLES["cdr_rated"] if c.name == "currency")
    guard = "IF NOT EXISTS " if tuple(version) >= ALTER_ADD_COLUMN_IF_NOT_EXISTS else ""
    return [f"ALTER TABLE {table_ref(database, t)} ADD COLUMN {guard}currency {column_type(col.kind, version)} "
            f"DEFAULT ''" for t in ("cdr_rated", "cdr_commissions", "account_state_history")]


def add_partial_columns(database: str, version: Version) -> list[str]:
    # A partial's sequence and its call's answer instant, so a rerate prices the slice, not a
    # whole call. Rows landed before read 0 / NULL (priced whole, as they were). Gated like 8.
    guard = "IF NOT EXISTS " if tuple(version) >= ALTER_ADD_COLUMN_IF_NOT_EXISTS else ""
    cols = {c.name: c for c in TABLES["cdr_rated"]}
    out = []
    for t in ("cdr_rated", "cdr_commissions"):
        out.append(f"ALTER TABLE {table_ref(database, t)} ADD COLUMN {guard}partial_seq "
                   f"{column_type(cols['partial_seq'].kind, version)} DEFAULT 0")
        out.append(f"ALTER TABLE {table_ref(database, t)} ADD COLUMN {guard}answer_ms "
                   f"{column_type(cols['answer_ms'].kind, version)}")
    return out


def create_landing_errors(database: str, version: Version, as_of: int | None = None) -> str:
    # (topic, partition, offset) is the message's identity: a batch re-read after a crash lands
    # its errors once. No time partition: landed_at is wall clock, a replay could cross months.
    return _replacing_table(database, version, "landing_errors",
                            "(source_topic, source_partition, source_offset)", as_of=as_of)


# Append only; never renumber or edit an applied migration — add a new one instead.
MIGRATIONS: list[tuple[int, str, Callable[[str, Version], list[str]]]] = [
    (1, "cdr_rated", lambda db, v: [create_cdr_rated(db, v, as_of=1)]),
    (2, "cdr_rejected", lambda db, v: [create_cdr_rejected(db, v)]),
    (3, "barring_events", lambda db, v: [create_barring_events(db, v)]),
    (4, "account_state_history", lambda db, v: [create_account_state_history(db, v, as_of=4)]),
    (5, "notifications", lambda db, v: [create_notifications(db, v)]),
    (6, "financial_periods", lambda db, v: _periods_migration(db, v)),
    (7, "cdr_commissions", lambda db, v: [create_cdr_commissions(db, v, as_of=7)]),
    (8, "cdr_rated_spans", lambda db, v: add_spans_column(db, v)),
    (9, "cdr_rated_currency", lambda db, v: add_currency_column(db, v)),
    (10, "cdr_rated_partials", lambda db, v: add_partial_columns(db, v)),
    (11, "landing_errors", lambda db, v: [create_landing_errors(db, v, as_of=11)]),
]


def _periods_migration(db: str, version: Version) -> list[str]:
    # Lazy: sinks.clickhouse.periods imports this module.
    from sinks.clickhouse import periods

    return periods.migration_sql(db, version)

LANDING_TABLES = ("cdr_rated", "cdr_rejected", "barring_events", "account_state_history", "notifications")


def applied_versions_sql(database: str) -> str:
    return f"SELECT DISTINCT version FROM {table_ref(database, 'schema_migrations')} ORDER BY version"


def migrate(backend: "Backend", database: str | None = None) -> list[int]:
    """Apply the migrations not yet recorded; return the versions applied now (empty on a re-run).

    Each statement is CREATE ... IF NOT EXISTS, so a crash between a CREATE and its record
    is repaired by simply running migrate again.
    """
    db = database or backend.database
    backend.execute(create_database(db))
    backend.execute(create_schema_migrations(db))
    return apply_migrations(backend, db, MIGRATIONS)


def apply_migrations(backend: "Backend", db: str, migrations) -> list[int]:
    """Run the migrations of ``migrations`` not yet recorded in ``schema_migrations``."""
    version = backend.version()
    done = {int(row[0]) for row in backend.query(applied_versions_sql(db))}
    applied: list[int] = []
    for number, name, build in migrations:
        if number in done:
            continue
        for sql in build(db, version):
            backend.execute(sql)
        # Columnar insert, never VALUES literals: 18.16 hangs on a data-less INSERT ... VALUES.
        backend.insert_columns(
            f"{db}.schema_migrations", ["version", "name", "applied_at", "server_version"],
            [[number], [name], [datetime.now(timezone.utc).replace(microsecond=0)],
             [".".join(map(str, version))]])
        log.info("event=migration_applied database=%s version=%d name=%s", db, number, name)
        applied.append(number)
    return applied


def landed_counts_sql(database: str) -> dict[str, str]:
    """Distinct rows per table. FINAL collapses replays that no merge has reached yet."""
    return {t: f"SELECT count() FROM {table_ref(database, t)} FINAL" for t in LANDING_TABLES}


def money_total_sql(database: str) -> str:
    # FINAL keeps one row per sorting key, the one with the highest rating_version.
    return f"SELECT toInt64(sum(cost_micros)) FROM {table_ref(database, 'cdr_rated')} FINAL"


def landed_counts(backend: "Backend", database: str | None = None) -> dict[str, int]:
    db = database or backend.database
    return {t: int(backend.query(sql)[0][0]) for t, sql in landed_counts_sql(db).items()}


def money_total_micros(backend: "Backend", database: str | None = None) -> int:
    rows = backend.query(money_total_sql(database or backend.database))
    return int(rows[0][0] or 0)
