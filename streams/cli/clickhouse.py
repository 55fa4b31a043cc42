"""``cdrflow clickhouse``: apply migrations, run ad-hoc SQL, print the analyst access config."""
from __future__ import annotations

import argparse
import os


def target(args) -> str:
    """--clickhouse, else CDRFLOW_CLICKHOUSE / .env via settings (default var/chdb)."""
    if getattr(args, "clickhouse", None):
        return args.clickhouse
    from streams.settings import get_settings

    return get_settings().clickhouse


def open_target(args):
    from sinks.clickhouse.backend import BackendLocked, open_backend
    from streams.cli.main import UserError

    where = target(args)
    live = _running_sink(where)
    if live is not None:
        return live
    try:
        return open_backend(where)
    except BackendLocked as exc:
        raise UserError(str(exc)) from None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    except Exception as exc:  # connection refused, bad password: the user fixes the target
        from streams.settings import redact_url

        raise UserError(f"cannot reach ClickHouse at {redact_url(where)}: {exc}") from None


def _running_sink(where: str):
    """A chdb store held by a running sink is queried through the sink's SQL interface
    (sinks/sql_http.py): chdb lets only that one process open it."""
    if where.startswith(("clickhouse://", "clickhouses://")):
        return None
    from sinks.clickhouse.http_backend import from_discovery
    from sinks.sql_http import discovery_path

    return from_discovery(discovery_path(where[len("chdb://"):] if where.startswith("chdb://") else where))


def add_target_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--clickhouse", metavar="TARGET", default=None,
                        help="chdb directory, chdb://PATH or clickhouse://user:pass@host:9000/db "
                             "(default: $CDRFLOW_CLICKHOUSE or var/chdb)")


def cmd_migrate(args) -> int:
    from sinks.clickhouse import analyst

    backend = open_target(args)
    try:
        applied = analyst.migrate(backend)
        version = ".".join(map(str, backend.version()))
    finally:
        backend.close()
    if applied:
        print(f"applied migrations {', '.join(map(str, applied))} on {backend.kind} (server {version})")
    else:
        print(f"schema up to date on {backend.kind} (server {version})")
    return 0


def cmd_sql(args) -> int:
    from streams.cli.main import UserError

    backend = open_target(args)
    try:
        try:
            if args.query.lstrip().split(None, 1)[0].upper() in ("SELECT", "SHOW", "DESCRIBE", "DESC",
                                                                   "WITH", "EXISTS", "EXPLAIN"):
                rows = backend.query(args.query)
            else:
                backend.execute(args.query)
                rows = []
        except IndexError:
            raise UserError("empty query") from None
        except Exception as exc:
            # Server-side SQL errors are the user's to fix; show the first line only.
            raise UserError(str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)) from None
    finally:
        backend.close()
    for row in rows:
        print("\t".join("\\N" if v is None else str(v) for v in row))
    return 0


def cmd_analyst_access(args) -> int:
    from sinks.clickhouse import analyst
    from streams.cli.main import UserError

    password = os.environ.get("CDRFLOW_ANALYST_PASSWORD")
    if not password:
        raise UserError("set CDRFLOW_ANALYST_PASSWORD (the analyst user's password; only its hash is printed)")
    backend = open_target(args)
    try:
        db, version = backend.database, backend.version()
    finally:
        backend.close()
    if analyst.supports_sql_rbac(version):
        for stmt in analyst.analyst_access_sql(db, version, password):
            print(stmt + ";")
    else:
        print(f"<!-- server {'.'.join(map(str, version))} has no SQL access management: put this in "
              f"/etc/clickhouse-server/users.d/cdrflow-analyst.xml -->")
        print(analyst.users_xml_snippet(db, password), end="")
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser("clickhouse", help="ClickHouse schema and ad-hoc SQL")
    sub = parser.add_subparsers(dest="clickhouse_command", metavar="ACTION", required=True)

    p = sub.add_parser("migrate", help="apply all schema migrations (tables and analyst views)")
    add_target_arg(p)
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("sql", help="run one SQL statement and print its rows tab-separated")
    p.add_argument("query", help='e.g. "SELECT count() FROM cdr_rated FINAL"')
    add_target_arg(p)
    p.set_defaults(func=cmd_sql)

    p = sub.add_parser("analyst-access",
                       help="print the read-only masked analyst role SQL (or users.xml for old servers)")
    add_target_arg(p)
    p.set_defaults(func=cmd_analyst_access)
