"""One small interface over the two ClickHouse backends cdrflow lands into.

* ``ChdbBackend``: chdb (ClickHouse 26.9 in-process) on a persistent directory — the local default.
* ``NativeBackend``: any clickhouse-server over the native protocol (clickhouse-driver).

Both are guarded by a lock: neither the chdb handle nor a clickhouse-driver Client may be used
from two threads at once, and the sink's HTTP status thread queries the same backend.
"""
from __future__ import annotations

import io
import logging
import os
import re
import threading
from typing import Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from sinks.clickhouse import ddl

log = logging.getLogger(__name__)


@runtime_checkable
class Backend(Protocol):
    kind: str
    database: str

    def execute(self, sql: str) -> None: ...

    def query(self, sql: str) -> list[tuple]: ...

    def insert_columns(self, table: str, names: list[str], columns: list[list],
                       settings: dict | None = None) -> None: ...

    def version(self) -> tuple[int, int, int]: ...

    def close(self) -> None: ...


class BackendLocked(RuntimeError):
    """The chdb data path is held by another process."""


def parse_version(text: str) -> tuple[int, int, int]:
    parts = [int(p) for p in re.findall(r"\d+", text)[:3]]
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


def split_table(table: str, default_db: str) -> tuple[str, str]:
    db, _, name = table.rpartition(".")
    return (db.strip("`") or default_db), name.strip("`")


def _settings_clause(settings: dict | None) -> str:
    if not settings:
        return ""
    parts = []
    for key, value in settings.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"bad setting name {key!r}")
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int):
            parts.append(f"{key} = {value}")
        else:
            text = str(value).replace("\\", "\\\\").replace("'", "\\'")
            parts.append(f"{key} = '{text}'")
    return " SETTINGS " + ", ".join(parts)


# ---------------------------------------------------------------------------------------- chdb

def _arrow_type(ch_type: str):
    """Arrow type that ClickHouse's ArrowStream input reads into ``ch_type`` without guessing."""
    import pyarrow as pa

    t = ch_type.strip()
    m = re.fullmatch(r"(Nullable|LowCardinality)\((.*)\)", t)
    if m:
        return _arrow_type(m.group(2))
    m = re.fullmatch(r"Array\((.*)\)", t)
    if m:
        return pa.list_(_arrow_type(m.group(1)))
    m = re.fullmatch(r"Decimal\((\d+),\s*(\d+)\)", t)
    if m:
        return pa.decimal128(int(m.group(1)), int(m.group(2)))
    m = re.fullmatch(r"DateTime64\((\d+)(?:,\s*'([^']*)')?\)", t)
    if m:
        unit = {0: "s", 3: "ms", 6: "us", 9: "ns"}.get(int(m.group(1)), "ms")
        return pa.timestamp(unit, tz=m.group(2) or "UTC")
    m = re.fullmatch(r"DateTime(?:\('([^']*)'\))?", t)
    if m:
        return pa.timestamp("s", tz=m.group(1) or "UTC")
    simple = {
        "String": pa.binary(), "Int8": pa.int8(), "Int16": pa.int16(), "Int32": pa.int32(),
        "Int64": pa.int64(), "UInt8": pa.uint8(), "UInt16": pa.uint16(), "UInt32": pa.uint32(),
        "UInt64": pa.uint64(), "Bool": pa.bool_(), "Date": pa.date32(), "Float64": pa.float64(),
    }
    return simple.get(t)


class ChdbBackend:
    """chdb on a persistent directory. One process per data path, one data path per process."""

    kind = "chdb"

    def __init__(self, path: str, database: str = "default") -> None:
        from chdb import session as chs

        self.path = os.path.abspath(path)
        self.database = database
        self._lock = threading.RLock()
        self._types: dict[tuple[str, str], dict[str, str]] = {}
        os.makedirs(self.path, exist_ok=True)
        try:
            self._session = chs.Session(self.path)
            self._session.query("SELECT 1", "CSV")
        except Exception as exc:
            msg = str(exc)
            if "already initialized with path" in msg:
                raise BackendLocked(
                    f"chdb is already open on another data path in this process; chdb allows one data "
                    f"path per process, close that backend before opening {self.path} ({msg})") from None
            raise BackendLocked(
                f"cannot open chdb data path {self.path}: only one process may open a chdb data path, "
                f"and another process (e.g. a running `python -m sinks`) probably holds it — stop it, "
                f"or point this one at a clickhouse:// server ({msg})") from None
        self._version: tuple[int, int, int] | None = None

    def __repr__(self) -> str:
        return f"ChdbBackend(path={self.path!r})"

    def execute(self, sql: str) -> None:
        with self._lock:
            self._session.query(sql, "CSV")
            # A DDL statement may change a table's columns; forget cached insert types.
            self._types.clear()

    def query(self, sql: str) -> list[tuple]:
        with self._lock:
            table = self._session.query(sql, "ArrowTable")
        cols = [table.column(i).to_pylist() for i in range(table.num_columns)]
        return list(zip(*cols)) if cols else []

    def version(self) -> tuple[int, int, int]:
        if self._version is None:
            self._version = parse_version(self.query("SELECT version()")[0][0])
        return self._version

    def query_bytes(self, sql: str, fmt: str, database: str | None = None) -> bytes:
        """The statement's output in ClickHouse format ``fmt`` (a FORMAT clause in ``sql`` wins),
        with ``database`` as the current one for this statement only (sinks/sql_http.py)."""
        with self._lock:
            switch = bool(database) and database != self.database
            if switch:
                self._session.query(f"USE {ddl.q(database)}", "CSV")
            try:
                out = self._session.query(sql, fmt)
            finally:
                if switch:
                    self._session.query(f"USE {ddl.q(self.database)}", "CSV")
                self._types.clear()   # it may have been DDL
        return out.bytes() if out is not None else b""

    def _column_types(self, db: str, table: str) -> dict[str, str]:
        key = (db, table)
        if key not in self._types:
            text = db.replace("'", "\\'"), table.replace("'", "\\'")
            rows = self.query(f"SELECT name, type FROM system.columns "
                              f"WHERE database = '{text[0]}' AND table = '{text[1]}'")
            self._types[key] = {n: t for n, t in rows}
        return self._types[key]

    def insert_columns(self, table: str, names: list[str], columns: list[list],
                       settings: dict | None = None) -> None:
        """Columnar insert as one Arrow IPC stream (no per-row SQL, no Python() frame lookup)."""
        import pyarrow as pa
        import pyarrow.ipc as ipc

        db, name = split_table(table, self.database)
        with self._lock:
            types = self._column_types(db, name)
            arrays = []
            for col_name, values in zip(names, columns):
                ch_type = types.get(col_name)
                if ch_type is None:
                    raise KeyError(f"{db}.{name} has no column {col_name!r}")
                arrays.append(pa.array(values, type=_arrow_type(ch_type)))
            batch = pa.table(arrays, names=list(names))
            buf = io.BytesIO()
            with ipc.new_stream(buf, batch.schema) as writer:
                writer.write_table(batch)
            # async_insert=0 always: chdb defaults it to 1 and the sink commits offsets right after.
            merged = {"async_insert": 0, **(settings or {})}
            cols = ", ".join(ddl.q(n) for n in names)
            sql = f"INSERT INTO {ddl.table_ref(db, name)} ({cols}){_settings_clause(merged)}"
            inserter = self._session.send_insert(sql, "ArrowStream")
            try:
                inserter.append(buf.getvalue())
            except BaseException:
                inserter.cancel()
                raise
            inserter.finish()

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.close()
                self._session = None


# -------------------------------------------------------------------------------------- native

class NativeBackend:
    """A clickhouse-server over the native protocol. The password never leaves this object."""

    kind = "native"

    def __init__(self, url: str, connect_timeout: float = 10, send_receive_timeout: float = 300) -> None:
        from clickhouse_driver import Client

        parts = urlsplit(url)
        if parts.scheme not in ("clickhouse", "clickhouses"):
            raise ValueError("a native ClickHouse target looks like clickhouse://user:password@host:port/db")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (9440 if parts.scheme == "clickhouses" else 9000)
        self.user = unquote(parts.username or "default")
        self.database = unquote(parts.path.lstrip("/")) or "default"
        self._lock = threading.RLock()
        self._client = Client.from_url(url)
        self._client.connection.connect_timeout = connect_timeout
        self._client.connection.send_receive_timeout = send_receive_timeout
        self._version: tuple[int, int, int] | None = None
        # 18.x needs the LowCardinality flag on every statement that creates or writes such a column.
        self._client.settings.update(ddl.session_settings(self.version()))

    def __repr__(self) -> str:
        return f"NativeBackend(clickhouse://{self.user}:***@{self.host}:{self.port}/{self.database})"

    __str__ = __repr__

    def execute(self, sql: str) -> None:
        with self._lock:
            self._client.execute(sql)

    def query(self, sql: str) -> list[tuple]:
        with self._lock:
            return [tuple(r) for r in self._client.execute(sql)]

    def version(self) -> tuple[int, int, int]:
        if self._version is None:
            with self._lock:
                self._version = parse_version(self._client.execute("SELECT version()")[0][0])
        return self._version

    def insert_columns(self, table: str, names: list[str], columns: list[list],
                       settings: dict | None = None) -> None:
        db, name = split_table(table, self.database)
        cols = ", ".join(ddl.q(n) for n in names)
        # The data goes as an argument: 18.16 hangs on INSERT ... VALUES without data.
        # clickhouse-driver rewrites datetime items in place, so hand it copies; the caller may retry.
        with self._lock:
            self._client.execute(f"INSERT INTO {ddl.table_ref(db, name)} ({cols}) VALUES",
                                 [list(c) for c in columns], columnar=True, settings=settings or None)

    def close(self) -> None:
        with self._lock:
            self._client.disconnect()


def open_backend(target: str) -> Backend:
    """``clickhouse://...`` → native; ``chdb://PATH`` or a plain filesystem path → chdb."""
    if target.startswith(("clickhouse://", "clickhouses://")):
        return NativeBackend(target)
    if target.startswith("chdb://"):
        return ChdbBackend(target[len("chdb://"):])
    if "://" in target:
        raise ValueError(f"unknown ClickHouse target scheme in {target.split('://')[0]!r}://...")
    return ChdbBackend(target)
