"""Analyst views, and the read-only masked analyst access, as migrations after ddl.py's.

Why views over ``cdr_rated FINAL`` and no materialised rollup: a materialised view adds every
inserted block to its target. On clickhouse-server 18.16 there is no non-replicated dedup
window, so a retried landing batch would be added twice; even on modern servers the rollup
would keep the old cost of a rerated CDR next to the new one. A view recomputes from the
deduplicated rows, so retries and reratings are right by construction. At cdrflow's local
scale that is fast enough; revisit with a tested, version-gated rollup if it ever is not.

Two databases:
* ``<db>``: ``v_*`` views for operators and the reports (they include phone numbers).
* ``<db>_analyst``: what the analyst user may read. Every view there is either an aggregate
  with no number columns or the masked call list. Isolation by database is the one mechanism
  both server generations have: 18.16 restricts a users.xml user with ``allow_databases``;
  modern servers grant SELECT on ``<db>_analyst.*`` to a role. (On 18.16 the views there are
  refused to that user too, because it checks the databases a view reads: see
  ``users_xml_snippet``.)

Migrations are numbered from 101 and recorded in the same ``schema_migrations`` table, so
they never collide with ddl.py's own list (which other modules extend from 5 upwards).
"""
from __future__ import annotations

import hashlib
import logging
import secrets
from typing import TYPE_CHECKING, Callable

from sinks.clickhouse import ddl
from sinks.clickhouse.ddl import q, table_ref
from sinks.reports import queries as Q

if TYPE_CHECKING:
    from sinks.clickhouse.backend import Backend

log = logging.getLogger(__name__)

Version = tuple[int, int, int]

# SQL access management (CREATE ROLE / USER / SETTINGS PROFILE) became usable in 20.5.
SQL_RBAC = (20, 5, 0)
# SQL SECURITY DEFINER on normal views: before it, selecting from a view also needs SELECT on
# the tables it reads, which would hand the analyst the raw number columns.
VIEW_SQL_SECURITY = (24, 4, 0)

ANALYST_ROLE = "cdrflow_analyst"
ANALYST_USER = "analyst"


def analyst_db(db: str) -> str:
    return f"{db}_analyst"


# name -> body builder, in dependency order. Operator views in <db>.
OPERATOR_VIEWS: dict[str, Callable[[str], str]] = {
    "v_itemized": Q.itemized_select,
    "v_daily_account": Q.daily_account_select,
    "v_daily_user": Q.daily_user_select,
    "v_period_account": Q.period_account_select,
    "v_period_user": Q.period_user_select,
    "v_current_spend_account": Q.current_spend_account_select,
    "v_current_spend_user": Q.current_spend_user_select,
    "v_top_destinations": Q.top_destinations_select,
    "v_barring_history": Q.barring_history_select,
    "v_threshold_breaches": Q.threshold_breaches_select,
}

# Views in <db>_analyst that pass an operator view through unchanged: none has number columns.
ANALYST_PASSTHROUGH = {
    "daily_account": "v_daily_account",
    "daily_user": "v_daily_user",
    "period_account": "v_period_account",
    "period_user": "v_period_user",
    "current_spend_account": "v_current_spend_account",
    "current_spend_user": "v_current_spend_user",
    "top_destinations": "v_top_destinations",
    "barring_history": "v_barring_history",
    "threshold_breaches": "v_threshold_breaches",
}


def create_view(db: str, name: str, body: str) -> str:
    # IF NOT EXISTS, not OR REPLACE: 18.16 has no CREATE OR REPLACE VIEW, and a re-run after a
    # crash between CREATE and the migration record must be harmless.
    return f"CREATE VIEW IF NOT EXISTS {table_ref(db, name)} AS {body}"


def operator_views_sql(db: str, version: Version) -> list[str]:
    return [create_view(db, name, build(db)) for name, build in OPERATOR_VIEWS.items()]


def analyst_views_sql(db: str, version: Version, salt: str | None = None) -> list[str]:
    adb = analyst_db(db)
    # A fresh salt per deployment: hashes cannot be matched against another dataset's.
    salt = salt if salt is not None else secrets.token_hex(16)
    stmts = [ddl.create_database(adb),
             create_view(adb, "cdr_masked", Q.masked_cdr_select(db, salt))]
    for name, source in ANALYST_PASSTHROUGH.items():
        stmts.append(create_view(adb, name, f"SELECT * FROM {table_ref(db, source)}"))
    return stmts


# Append only, numbered from 101 (see module doc).
MIGRATIONS: list[tuple[int, str, Callable[[str, Version], list[str]]]] = [
    (101, "operator_views", operator_views_sql),
    (102, "analyst_masked_views", lambda db, v: analyst_views_sql(db, v)),
]


def migrate(backend: "Backend", database: str | None = None) -> list[int]:
    """ddl.migrate, then the analyst views; returns every version applied now (empty on re-run)."""
    db = database or backend.database
    return ddl.migrate(backend, db) + ddl.apply_migrations(backend, db, MIGRATIONS)


# ---------------------------------------------------------------------- analyst access

def supports_sql_rbac(version: Version) -> bool:
    return tuple(version) >= SQL_RBAC


def _sha256_hex(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def analyst_access_sql(db: str, version: Version, password: str, *, user: str = ANALYST_USER,
                       role: str = ANALYST_ROLE) -> list[str]:
    """SQL that creates a read-only role/user seeing only ``<db>_analyst`` (servers >= 20.5).

    The password goes in as a SHA-256 hash, so the statement log never holds it in clear.
    Older servers have no SQL access management: use ``users_xml_snippet`` instead.
    """
    if not supports_sql_rbac(version):
        raise ValueError(f"server {'.'.join(map(str, version))} has no SQL access management; "
                         f"configure the analyst in users.xml (users_xml_snippet)")
    adb = analyst_db(db)
    stmts = [
        f"CREATE ROLE IF NOT EXISTS {q(role)}",
        f"GRANT SELECT ON {q(adb)}.* TO {q(role)}",
        # readonly=1: no writes, no DDL, and the role cannot switch the setting back off.
        f"CREATE SETTINGS PROFILE IF NOT EXISTS {q(role + '_profile')} SETTINGS readonly = 1 TO {q(role)}",
        f"CREATE USER IF NOT EXISTS {q(user)} IDENTIFIED WITH sha256_hash BY {Q.lit(_sha256_hex(password))} "
        f"DEFAULT DATABASE {q(adb)}",
        f"GRANT {q(role)} TO {q(user)}",
        f"ALTER USER {q(user)} DEFAULT ROLE {q(role)}",
    ]
    names = ["cdr_masked", *ANALYST_PASSTHROUGH]
    if tuple(version) >= VIEW_SQL_SECURITY:
        # The analyst views read <db> with their definer's rights, so the role needs nothing on
        # <db> itself and never sees a raw number column.
        stmts += [f"ALTER TABLE {table_ref(adb, n)} MODIFY SQL SECURITY DEFINER" for n in names]
    else:
        # Views run with the caller's rights here: grant the non-number columns of the base
        # tables. The masked call list then cannot be read (it needs the number columns to mask
        # them); the aggregate views work. Upgrade to >= 24.4 for the masked call list.
        safe = [c for c in ddl_columns("cdr_rated") if c not in Q.NUMBER_COLUMNS]
        stmts.append(f"GRANT SELECT({', '.join(safe)}) ON {table_ref(db, 'cdr_rated')} TO {q(role)}")
        stmts.append(f"GRANT SELECT ON {table_ref(db, 'barring_events')} TO {q(role)}")
    return stmts


def ddl_columns(table: str) -> list[str]:
    from sinks.clickhouse.columns import column_names

    return column_names(table)


def users_xml_snippet(db: str, password: str, *, user: str = ANALYST_USER,
                      networks: tuple[str, ...] = ("127.0.0.1", "::1")) -> str:
    """users.xml fragment for 18.x servers: a readonly profile and a user limited to <db>_analyst.

    Put it in ``users.d/cdrflow-analyst.xml`` next to the server's users.xml. Measured on
    18.16: the user is readonly and cannot touch ``<db>`` directly — but 18.16 also checks
    ``allow_databases`` against the tables a view reads, so the ``<db>_analyst`` views are
    refused too ("Access denied to database <db>"). On 18.x this snippet therefore only yields
    a safe, locked-down user; giving it masked data needs a masked copy stored inside
    ``<db>_analyst`` (e.g. a materialised view into a ReplacingMergeTree(rating_version) read
    with FINAL), which is not built yet.
    """
    ips = "\n".join(f"        <ip>{ip}</ip>" for ip in networks)
    return f"""<yandex>
  <profiles>
    <cdrflow_analyst>
      <readonly>1</readonly>
    </cdrflow_analyst>
  </profiles>
  <users>
    <{user}>
      <password_sha256_hex>{_sha256_hex(password)}</password_sha256_hex>
      <networks>
{ips}
      </networks>
      <profile>cdrflow_analyst</profile>
      <quota>default</quota>
      <allow_databases>
        <database>{analyst_db(db)}</database>
      </allow_databases>
    </{user}>
  </users>
</yandex>
"""
