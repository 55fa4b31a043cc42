"""A throwaway Debian ``clickhouse-server`` (18.16) on 127.0.0.1 for native-protocol tests.

Everything lives under one temporary directory (config, users, data, tmp, logs), so a run never
touches /var/lib/clickhouse or a server someone else started. Ports are picked free at random.
The server is stopped by its own PID, never by name.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Iterator

CONFIG_XML = """<?xml version="1.0"?>
<yandex>
    <logger>
        <level>information</level>
        <log>{root}/log/server.log</log>
        <errorlog>{root}/log/server.err.log</errorlog>
        <size>10M</size>
        <count>1</count>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>{tcp_port}</tcp_port>
    <http_port>{http_port}</http_port>
    <max_connections>64</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>16</max_concurrent_queries>
    <uncompressed_cache_size>8388608</uncompressed_cache_size>
    <mark_cache_size>67108864</mark_cache_size>
    <path>{root}/data/</path>
    <tmp_path>{root}/tmp/</tmp_path>
    <user_files_path>{root}/user_files/</user_files_path>
    <format_schema_path>{root}/format_schemas/</format_schema_path>
    <users_config>{root}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
    <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
    <max_session_timeout>3600</max_session_timeout>
    <default_session_timeout>60</default_session_timeout>
    <dictionaries_config>{root}/no_dictionaries_*.xml</dictionaries_config>
</yandex>
"""

USERS_XML = """<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>2000000000</max_memory_usage>
            <load_balancing>random</load_balancing>
        </default>
    </profiles>
    <users>
        <default>
            <password>{password}</password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
"""


class ServerUnavailable(RuntimeError):
    """No clickhouse-server binary on this machine."""


def find_server_command() -> list[str] | None:
    """The command that starts a server: the split Debian binary or the all-in-one one."""
    exe = shutil.which("clickhouse-server") or (
        "/usr/sbin/clickhouse-server" if os.access("/usr/sbin/clickhouse-server", os.X_OK) else None)
    if exe:
        return [exe]
    mono = shutil.which("clickhouse") or ("/usr/bin/clickhouse" if os.access("/usr/bin/clickhouse", os.X_OK) else None)
    if mono:
        return [mono, "server"]
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _log_tail(root: Path, limit: int = 4000) -> str:
    parts = []
    for name in ("log/server.err.log", "log/server.log", "stdout.log"):
        p = root / name
        if p.exists():
            text = p.read_text(errors="replace")
            parts.append(f"--- {name} ---\n{text[-limit:]}")
    return "\n".join(parts) or "(no server log written)"


def _wait_ready(proc: subprocess.Popen, root: Path, port: int, password: str, timeout: float) -> None:
    from clickhouse_driver import Client

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"clickhouse-server exited with {proc.returncode} during start\n{_log_tail(root)}")
        try:
            # A bare TCP probe first: clickhouse-driver logs every refused connection as a warning.
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            client = Client(host="127.0.0.1", port=port, user="default", password=password,
                            connect_timeout=2, send_receive_timeout=5)
            try:
                if client.execute("SELECT 1") == [(1,)]:
                    return
            finally:
                client.disconnect()
        except Exception as exc:  # connection refused until the server listens
            last = exc
        time.sleep(0.25)
    raise TimeoutError(f"clickhouse-server not ready on 127.0.0.1:{port} after {timeout:.0f}s "
                       f"(last error: {last!r})\n{_log_tail(root)}")


def _stop(proc: subprocess.Popen, grace: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


class ClickHouseServer:
    """A private server under ``root`` that can be stopped (SIGTERM or SIGKILL) and started again
    on the same data directory and the same ports, e.g. to take ClickHouse away mid-landing."""

    def __init__(self, root: Path, password: str = "cdrflow-test", timeout: float = 60.0) -> None:
        cmd = find_server_command()
        if cmd is None:
            raise ServerUnavailable("clickhouse-server is not installed (apt-get install clickhouse-server, "
                                    "or `make system-deps`)")
        self.cmd = cmd
        self.root = Path(root).resolve()
        self.password = password
        self.timeout = timeout
        for sub in ("data", "tmp", "user_files", "format_schemas", "log"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.tcp_port, self.http_port = free_port(), free_port()
        while self.http_port == self.tcp_port:
            self.http_port = free_port()
        (self.root / "config.xml").write_text(CONFIG_XML.format(root=self.root, tcp_port=self.tcp_port,
                                                                http_port=self.http_port))
        (self.root / "users.xml").write_text(USERS_XML.format(password=password))
        self.proc: subprocess.Popen | None = None
        self._stdout = None

    @property
    def url(self) -> str:
        return f"clickhouse://default:{self.password}@127.0.0.1:{self.tcp_port}/default"

    def start(self) -> str:
        self._stdout = open(self.root / "stdout.log", "ab")
        # cwd=root: the server resolves some relative paths (preprocessed configs) against it.
        self.proc = subprocess.Popen([*self.cmd, f"--config-file={self.root / 'config.xml'}"], cwd=self.root,
                                     stdout=self._stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            _wait_ready(self.proc, self.root, self.tcp_port, self.password, self.timeout)
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self, kill: bool = False) -> None:
        """SIGTERM (graceful) or SIGKILL this server, by its own PID; the data stays."""
        if self.proc is not None:
            if kill and self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            _stop(self.proc)
            self.proc = None
        if self._stdout is not None:
            self._stdout.close()
            self._stdout = None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@contextlib.contextmanager
def clickhouse_server(root: Path, password: str = "cdrflow-test", timeout: float = 60.0) -> Iterator[str]:
    """Start a private clickhouse-server under ``root``; yield its ``clickhouse://`` URL.

    Raises ServerUnavailable when no binary is installed (the fixture turns that into a skip,
    or a failure under CI).
    """
    server = ClickHouseServer(root, password, timeout)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
