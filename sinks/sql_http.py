"""ClickHouse's HTTP interface over the sink's own chdb session, so analysts can query a live store.

chdb allows one process per data path and the sink holds it while ``cdrflow up`` runs; without
this, ``cdrflow clickhouse sql``, the reports and any ClickHouse client fail until the stack
stops. The sink answers the subset of https://clickhouse.com/docs/interfaces/http that
clickhouse-connect and curl use: GET/POST ``/?query=`` (the POST body is the query, or its
continuation), ``database``, ``default_format`` (a FORMAT clause wins; chdb renders every
format itself), ``/ping``, HTTP basic auth or ``X-ClickHouse-User``/``-Key`` headers, errors as
``Code: N. DB::Exception: ...`` with ``X-ClickHouse-Exception-Code``. Queries share the backend
lock with landing and the portal (the chdb handle is not thread-safe).

Who may do what (checked here, the server side; chdb has no users of its own):
* ``default`` (the operator): any statement; password from CDRFLOW_SQL_HTTP_PASSWORD or, if
  unset, a random one written with the port to ``<chdb path>.sql-http.json`` (mode 0600), which
  ``cdrflow clickhouse sql`` / ``cdrflow report`` read to find the running sink.
* the analyst (CDRFLOW_ANALYST_USER / CDRFLOW_ANALYST_PASSWORD): one SELECT reading only
  ``<db>_analyst`` (masked numbers and aggregates, sinks/clickhouse/analyst.py) — see
  ``analyst_check``.
* a portal customer user (streams/portal/users.py, CDRFLOW_PORTAL_USERS_FILE, same passwords
  and grants as the portal, re-read on every request): the analyst's rules, but the only
  database it may read is its own ``<db>_customer_<hash>``, whose views are the ``<db>_analyst``
  views that have an ``account`` column, filtered to its granted accounts (seed 004). Those views
  are rewritten from the grant store before each of its queries, in the same hold of the
  backend lock as the query: a revoked grant is gone on the next request. The filter lives in
  the view definitions, not in the query text, so no query text can widen it: the query may
  name only tables of that database (``analyst_check`` on the resolved query tree).
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import threading
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable
from urllib.parse import parse_qs, urlsplit

from sinks.clickhouse import ddl
from sinks.reports.queries import lit, lit_list

log = logging.getLogger("cdrflow.sink.sql")

ACCESS_DENIED = (497, "ACCESS_DENIED")
AUTHENTICATION_FAILED = (516, "AUTHENTICATION_FAILED")
SYNTAX_ERROR = (62, "SYNTAX_ERROR")
MAX_QUERY_BYTES = 1 << 20

# System tables an analyst's client may read: the constant row and the settings clients probe
# on connect (clickhouse-connect reads system.settings). Nothing with query text or data.
ANALYST_SYSTEM_TABLES = frozenset({"system.one", "system.settings", "system.functions",
                                   "system.data_type_families", "system.time_zones"})
# Scalar functions that read outside the query's tables (files, dictionaries, Join tables).
_READING_FUNCTIONS = re.compile(r"^(file|joinGet\w*|dictGet\w*|dictHas|dictIsIn|getServerSetting\w*)$", re.I)


class Refused(Exception):
    def __init__(self, message: str, code: tuple[int, str] = ACCESS_DENIED) -> None:
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------- pure helpers

def one_statement(sql: str) -> str:
    """``sql`` without a trailing ``;``; Refused if it holds more than one statement.

    chdb runs every statement of a multi-statement text, including after ``EXPLAIN``, so the
    check must come before any text reaches it. Quotes, backquotes and comments are skipped.
    """
    i, n, end = 0, len(sql), None
    while i < n:
        c = sql[i]
        if c in "'\"`":
            i += 1
            while i < n and sql[i] != c:
                i += 2 if sql[i] == "\\" else 1
            i += 1
            continue
        if sql.startswith("--", i) or c == "#":
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
            continue
        if sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
            continue
        if c == ";":
            end = i if end is None else end
            i += 1
            continue
        if end is not None and not c.isspace():
            raise Refused("one statement per request", SYNTAX_ERROR)
        i += 1
    return sql if end is None else sql[:end]


def _significant(sql: str) -> str:
    """``sql`` with literals and comments blanked, upper-cased, for keyword checks."""
    out, i, n = [], 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            j = i + 1
            while j < n and sql[j] != c:
                j += 2 if sql[j] == "\\" else 1
            out.append(" X " if c != "'" else " '' ")
            i = j + 1
        elif sql.startswith("--", i) or c == "#":
            j = sql.find("\n", i)
            i = n if j < 0 else j
        elif sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
            out.append(" ")
        else:
            out.append(c)
            i += 1
    return "".join(out).upper()


def analyst_check(sql: str, explain: Callable[[str], str], analyst_db: str,
                  table_functions: frozenset[str]) -> None:
    """Refused unless ``sql`` is one SELECT reading only ``analyst_db`` (and harmless system tables).

    ``explain(text)`` returns the TSVRaw output of an EXPLAIN. EXPLAIN AST never executes
    anything, so functions are vetted there first; EXPLAIN QUERY TREE (which folds constants)
    then names every table the query reads, resolved, without expanding views.
    """
    sig = _significant(sql).strip()
    if not re.match(r"^\(*\s*(SELECT|WITH)\b", sig):
        raise Refused("the analyst may only run SELECT")
    if re.search(r"\bINTO\s+OUTFILE\b", sig):
        raise Refused("the analyst may not write files")
    ast = explain(f"EXPLAIN AST {sql}")
    for name in re.findall(r"^\s*Function (\w+)", ast, re.M):
        if name in table_functions or name.lower() in table_functions or _READING_FUNCTIONS.match(name):
            raise Refused(f"the analyst may not use {name}()")
    tree = explain(f"EXPLAIN QUERY TREE {sql}")
    if "TABLE_FUNCTION" in tree:
        raise Refused("the analyst may not use table functions")
    for table in re.findall(r"table_name: (\S+?),?$", tree, re.M):
        db = table.split(".", 1)[0]
        if db != analyst_db and table not in ANALYST_SYSTEM_TABLES:
            raise Refused(f"the analyst may read only {analyst_db}.* (masked views), not {table}")


def customer_db(db: str, user: str) -> str:
    # A hash, not the name: portal user names are free text, database names are not.
    return f"{db}_customer_{hashlib.sha256(user.encode()).hexdigest()[:16]}"


def grant_condition(user, with_service_user: bool) -> str:
    """WHERE condition limiting rows to ``user``'s view grants (a portal ``User``).

    A whole-account grant shows every row of the account; a grant of some service users shows
    only their rows, and only in views that have a ``service_user`` column (account-wide
    figures need a whole-account grant, as in the portal). No grant: no rows.
    """
    parts = []
    whole = [a for a in user.accounts() if user.can(a, whole=True)]
    if whole:
        parts.append(f"account IN {lit_list(whole)}")
    if with_service_user:
        for a in user.accounts():
            users = user.visible_users(a)
            if users is not None and user.can(a) and users:
                parts.append(f"(account = {lit(a)} AND service_user IN {lit_list(sorted(users))})")
    return " OR ".join(parts) or "0"


def customer_views_sql(analyst_db: str, cdb: str, views: dict[str, set[str]], user) -> list[str]:
    """Statements that (re)make ``cdb``'s views over ``analyst_db`` for ``user``'s grants now.

    ``views``: analyst view -> its columns. Views without an ``account`` column (none today,
    but a later aggregate across accounts) are not offered: they cannot be filtered.
    """
    stmts = [ddl.create_database(cdb)]
    for name, cols in sorted(views.items()):
        if "account" in cols:
            cond = grant_condition(user, "service_user" in cols)
            stmts.append(f"CREATE OR REPLACE VIEW {table_ref(cdb, name)} AS "
                         f"SELECT * FROM {table_ref(analyst_db, name)} WHERE {cond}")
    return stmts


@dataclass(frozen=True)
class Identity:
    user: str
    role: str          # "operator" | "analyst" | "customer"
    portal_user: object = None


class Access:
    """Users of this interface; passwords compared in constant time, never logged."""

    def __init__(self, operator_password: str, analyst_user: str | None = None,
                 analyst_password: str | None = None, portal_store=None) -> None:
        self._users = {"default": (operator_password, "operator")}
        if analyst_user and analyst_password:
            self._users[analyst_user] = (analyst_password, "analyst")
        self._portal = portal_store

    def identify(self, user: str, password: str) -> Identity:
        known = self._users.get(user)
        if known is None and self._portal is not None:
            # The operator and analyst names win: a portal user cannot shadow them.
            pu = self._portal.authenticate(user, password)
            if pu is not None:
                return Identity(user, "customer", pu)
        # Compare against something even for an unknown user: same time either way.
        expected = known[0] if known else secrets.token_hex(16)
        if not hmac.compare_digest(password.encode(), expected.encode()) or known is None:
            raise Refused(f"{user}: authentication failed: password is incorrect, or there is no user "
                          f"with such name", AUTHENTICATION_FAILED)
        return Identity(user, known[1])


def credentials(headers, params: dict[str, str]) -> tuple[str, str]:
    auth = headers.get("Authorization", "")
    if auth.startswith("Basic "):
        try:
            user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
            return user or "default", password
        except (ValueError, UnicodeDecodeError):
            raise Refused("bad Authorization header", AUTHENTICATION_FAILED) from None
    if headers.get("X-ClickHouse-User"):
        return headers["X-ClickHouse-User"], headers.get("X-ClickHouse-Key", "")
    return params.get("user", "default"), params.get("password", "")


def error_body(code: tuple[int, str], message: str) -> bytes:
    return f"Code: {code[0]}. DB::Exception: {message}. ({code[1]})\n".encode()


def chdb_error_code(text: str) -> tuple[int, str]:
    m = re.match(r"Code: (\d+)\..*\((\w+)\)", text.strip(), re.S)
    return (int(m.group(1)), m.group(2)) if m else (1001, "STD_EXCEPTION")


# ------------------------------------------------------------------------------ the server

@dataclass
class SqlServer:
    server: ThreadingHTTPServer
    url: str
    discovery: Path | None

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        if self.discovery is not None:
            try:
                self.discovery.unlink()
            except FileNotFoundError:
                pass


def discovery_path(chdb_path: str) -> Path:
    """Where a running sink announces its SQL interface for a chdb data path."""
    return Path(os.path.abspath(chdb_path).rstrip("/") + ".sql-http.json")


def serve(backend, access: Access, host: str = "127.0.0.1", port: int = 0,
          operator_password: str | None = None) -> SqlServer:
    """Serve ``backend`` (a ChdbBackend) over ClickHouse HTTP in a daemon thread."""
    adb = f"{backend.database}_analyst"
    tf_rows = backend.query("SELECT name FROM system.table_functions")
    table_functions = frozenset(r[0] for r in tf_rows) | frozenset(r[0].lower() for r in tf_rows)

    def explain(text: str, database: str = adb) -> str:
        return backend.query_bytes(text, "TSVRaw", database).decode("utf-8", "replace")

    # The view rewrite, the check and the query must see the same grants: one hold of the
    # backend's lock (an RLock; query_bytes takes it again).
    lock = getattr(backend, "_lock", None) or threading.RLock()

    def customer_query(who: Identity, sql: str, database: str | None, fmt: str) -> bytes:
        cdb = customer_db(backend.database, who.user)
        if database not in (None, cdb):
            raise Refused(f"{who.user} may read only its own views (database {cdb})")
        with lock:
            views: dict[str, set[str]] = {}
            for name, col in backend.query(f"SELECT table, name FROM system.columns "
                                           f"WHERE database = {lit(adb)}"):
                views.setdefault(name, set()).add(col)
            for stmt in customer_views_sql(adb, cdb, views, who.portal_user):
                backend.query_bytes(stmt, "TSVRaw")
            analyst_check(sql, lambda text: explain(text, cdb), cdb, table_functions)
            return backend.query_bytes(sql, fmt, cdb)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):  # noqa: N802
            self._handle(b"")

        def do_POST(self):  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_QUERY_BYTES:
                return self._send(413, error_body(SYNTAX_ERROR, "query too large"), code=SYNTAX_ERROR)
            self._handle(self.rfile.read(length) if length else b"")

        def _handle(self, body: bytes) -> None:
            parts = urlsplit(self.path)
            params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
            if parts.path in ("/ping", "/replicas_status") or (parts.path == "/" and "query" not in params
                                                               and not body):
                return self._send(200, b"Ok.\n", ctype="text/plain; charset=UTF-8")
            if parts.path != "/":
                return self._send(404, b"There is no handle " + parts.path.encode() + b"\n")
            query = params.get("query", "")
            if body:
                query = f"{query}\n{body.decode('utf-8', 'replace')}" if query else body.decode("utf-8", "replace")
            try:
                who = access.identify(*credentials(self.headers, params))
                sql = one_statement(query)
                if not sql.strip():
                    raise Refused("empty query", SYNTAX_ERROR)
                database = params.get("database") or None
                if who.role == "analyst":
                    if database not in (None, adb):
                        raise Refused(f"the analyst may read only {adb}")
                    database = adb
                    analyst_check(sql, explain, adb, table_functions)
                fmt = params.get("default_format") or "TabSeparated"
                if who.role == "customer":
                    out = customer_query(who, sql, database, fmt)
                else:
                    out = backend.query_bytes(sql, fmt, database)
            except Refused as exc:
                status = 403 if exc.code in (ACCESS_DENIED, AUTHENTICATION_FAILED) else 400
                log.warning("event=sql_refused code=%s reason=%s", exc.code[1], str(exc)[:200])
                return self._send(status, error_body(exc.code, str(exc)), code=exc.code)
            except Exception as exc:  # noqa: BLE001 — the server's own error text, as ClickHouse sends it
                text = str(exc).strip() or repr(exc)
                code = chdb_error_code(text)
                body_text = text if text.startswith("Code:") else error_body(code, text).decode()
                return self._send(500, body_text.rstrip("\n").encode() + b"\n", code=code)
            fmt_header = re.search(r"\bFORMAT\s+(\w+)\s*$", _significant(sql).strip())
            self._send(200, out, ctype="application/octet-stream",
                       fmt=fmt_header.group(1).title() if fmt_header else fmt)

        def _send(self, status: int, body: bytes, ctype: str = "text/plain; charset=UTF-8",
                  code: tuple[int, str] | None = None, fmt: str | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-ClickHouse-Server-Display-Name", "cdrflow-sink")
            self.send_header("X-ClickHouse-Query-Id", str(uuid.uuid4()))
            self.send_header("X-ClickHouse-Timezone", "UTC")
            self.send_header("X-ClickHouse-Summary", json.dumps({"read_rows": "0", "read_bytes": "0",
                                                                 "written_rows": "0", "written_bytes": "0",
                                                                 "total_rows_to_read": "0"}))
            if fmt:
                self.send_header("X-ClickHouse-Format", fmt)
            if code:
                self.send_header("X-ClickHouse-Exception-Code", str(code[0]))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="sink-sql-http", daemon=True).start()
    url = f"http://{host}:{server.server_address[1]}/"
    discovery = None
    if getattr(backend, "path", None) and operator_password is not None:
        discovery = discovery_path(backend.path)
        try:
            # 0600 before the password goes in: other local users must not read it.
            fd = os.open(discovery, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump({"url": url, "user": "default", "password": operator_password, "pid": os.getpid(),
                           "database": backend.database}, f)
        except OSError as exc:   # a read-only parent: serve anyway, clients need the URL and password
            log.warning("event=sql_http_not_announced path=%s error=%r", discovery, exc)
            discovery = None
    log.info("event=sql_http_listening url=%s analyst_db=%s", url, adb)
    return SqlServer(server, url, discovery)


def start_for_sink(backend, host: str, port: int, operator_password: str | None,
                   analyst_user: str | None, analyst_password: str | None) -> SqlServer | None:
    """The sink's SQL interface; a failure to start is logged, never a reason to stop landing."""
    password = operator_password or secrets.token_urlsafe(24)
    try:
        from streams.portal.users import UserStore
        from streams.settings import get_settings

        store = UserStore(get_settings().portal_users_file)
        return serve(backend, Access(password, analyst_user, analyst_password, store), host, port, password)
    except Exception as exc:  # noqa: BLE001
        log.error("event=sql_http_not_started host=%s port=%d error=%r", host, port, exc)
        return None


def table_ref(database: str, table: str) -> str:
    return ddl.table_ref(database, table)
