"""A Backend over ClickHouse's HTTP interface, as a running sink serves it (sinks/sql_http.py).

Results travel as ArrowStream and are read back like ChdbBackend reads chdb's Arrow output, so
the reports get the same Python types (Decimal, aware datetime) either way.
"""
from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

from sinks.clickhouse.backend import parse_version


class HttpError(RuntimeError):
    pass


class HttpBackend:
    kind = "http"

    def __init__(self, url: str, user: str, password: str, database: str = "default",
                 timeout_s: float = 300) -> None:
        self.url = url.rstrip("/") + "/"
        self.database = database
        self._auth = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._user = user
        self._timeout = timeout_s
        self._version: tuple[int, int, int] | None = None

    def __repr__(self) -> str:
        return f"HttpBackend({self.url}, user={self._user})"

    def _post(self, sql: str, fmt: str) -> bytes:
        req = urllib.request.Request(self.url + "?" + urlencode({"default_format": fmt, "database": self.database}),
                                     data=sql.encode(), method="POST", headers={"Authorization": self._auth})
        try:
            with urllib.request.urlopen(req, timeout=self._timeout) as resp:
                return resp.read()
        except urllib.error.HTTPError as exc:
            raise HttpError(exc.read().decode("utf-8", "replace").strip() or str(exc)) from None

    def execute(self, sql: str) -> None:
        self._post(sql, "TabSeparated")

    def query(self, sql: str) -> list[tuple]:
        import pyarrow as pa

        data = self._post(sql, "ArrowStream")
        if not data:
            return []
        table = pa.ipc.open_stream(data).read_all()
        cols = [table.column(i).to_pylist() for i in range(table.num_columns)]
        return list(zip(*cols)) if cols else []

    def version(self) -> tuple[int, int, int]:
        if self._version is None:
            self._version = parse_version(self.query("SELECT version()")[0][0])
        return self._version

    def insert_columns(self, table, names, columns, settings=None) -> None:
        raise HttpError("inserts go through the sink, not its SQL interface")

    def close(self) -> None:
        pass


def from_discovery(path: Path, timeout_s: float = 2) -> HttpBackend | None:
    """The running sink's interface announced at ``path``, if it answers; None otherwise."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        with urllib.request.urlopen(info["url"] + "ping", timeout=timeout_s) as resp:
            if resp.status != 200:
                return None
    except (OSError, ValueError, KeyError):
        return None   # no sink, a stale file of a stopped one, or unreadable (not ours)
    return HttpBackend(info["url"], info["user"], info["password"], info.get("database", "default"))
