"""The embedded local stack: tansu broker, Faust worker(s) and the ClickHouse sink.

Everything it starts, it stops (by PID), including on errors, so ``make run`` leaves no orphans.
"""
from __future__ import annotations

import json
import logging
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from streams.local.broker import create_topics, start_tansu
from streams.local.procs import Child, free_port, spawn, wait_port

log = logging.getLogger("cdrflow.local")


@dataclass
class LocalStack:
    workdir: Path
    workers: int = 1
    partitions: int = 8
    raw_partitions: int = 4
    clickhouse: str | None = None          # default: chdb in workdir/chdb
    bootstrap: str | None = None           # external Kafka; None starts tansu
    broker_data: Path | None = None        # tansu's data on disk here (durable); None: in memory
    client_conf: dict = field(default_factory=dict)
    extra_env: dict = field(default_factory=dict)
    children: dict[str, Child] = field(default_factory=dict)
    sink_status_port: int = 0
    portal_port: int = 0                   # >0: the sink also serves the self-care portal here (shares chdb)
    worker_ports: dict[str, int] = field(default_factory=dict)

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    def start(self, sink: bool = True) -> "LocalStack":
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            if self.bootstrap is None:
                broker, self.bootstrap = start_tansu(self.log_dir, data_dir=self.broker_data)
                self.children["tansu"] = broker
            # SASL/TLS settings from CDRFLOW_KAFKA_* pass through to every client we create.
            from streams.settings import get_settings
            self.client_conf = {**get_settings().kafka_client_config(), **self.client_conf,
                                "bootstrap.servers": self.bootstrap}
            create_topics(self.client_conf, self.partitions, self.raw_partitions)
            for i in range(self.workers):
                self.start_worker(f"worker-{i + 1}")
            if sink:
                self.start_sink()
        except BaseException:
            self.stop()
            raise
        return self

    def env(self) -> dict:
        env = {
            "CDRFLOW_KAFKA_BOOTSTRAP": self.bootstrap or "",
            "CDRFLOW_PARTITIONS": str(self.partitions),
            "CDRFLOW_RAW_PARTITIONS": str(self.raw_partitions),
            "CDRFLOW_CLICKHOUSE": self.clickhouse or str(self.workdir / "chdb"),
            "CDRFLOW_BROKER_IS_TANSU": "true" if "tansu" in self.children else "false",
            "PYTHONUNBUFFERED": "1",
        }
        env.update(self.extra_env)
        return env

    def start_worker(self, name: str) -> Child:
        port = free_port()
        env = {**self.env(), "CDRFLOW_WEB_PORT": str(port), "CDRFLOW_WORKER_ID": name}
        child = spawn(name, [sys.executable, "-m", "streams.worker"], self.log_dir, env)
        self.children[name] = child
        self.worker_ports[name] = port
        return child

    def start_webhooks(self, partners_file: Path, *extra: str) -> Child:
        """``cdrflow notifications deliver --keep-trying`` (what ``cdrflow up`` starts when
        CDRFLOW_WEBHOOKS_FILE is set): partner webhooks from account.notifications."""
        # Not `-m streams.cli.main`: that would load the CLI module twice (as __main__ too).
        main = "import sys; from streams.cli.main import main; sys.exit(main())"
        child = spawn("webhooks", [sys.executable, "-c", main, "notifications", "deliver", "--keep-trying",
                                   "--webhooks", str(partners_file), *extra], self.log_dir, self.env())
        self.children["webhooks"] = child
        return child

    def start_sink(self) -> Child:
        self.sink_status_port = free_port()
        env = {**self.env(), "CDRFLOW_SINK_STATUS_PORT": str(self.sink_status_port),
               "CDRFLOW_SINK_PORTAL_PORT": str(self.portal_port)}
        child = spawn("sink", [sys.executable, "-m", "sinks"], self.log_dir, env)
        self.children["sink"] = child
        wait_port(self.sink_status_port, 60, child)
        if self.portal_port:
            wait_port(self.portal_port, 30, child)
        return child

    def wait_workers_ready(self, timeout_s: float = 90) -> None:
        """A worker is ready when its web server answers (after its first rebalance)."""
        for name, port in self.worker_ports.items():
            wait_port(port, timeout_s, self.children[name])

    def sink_status(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.sink_status_port}/status", timeout=10) as r:
            return json.load(r)

    def worker_stats(self, name: str) -> dict:
        port = self.worker_ports[name]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/cdrflow/stats", timeout=5) as r:
            return json.load(r)

    def assignment(self, name: str) -> dict:
        port = self.worker_ports[name]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/cdrflow/assignment", timeout=5) as r:
            return json.load(r)

    def wait_balanced(self, timeout_s: float = 120) -> dict[str, list[int]]:
        """Wait until every worker owns partitions and together they own all of them."""
        def balanced() -> bool:
            try:
                got = {n: self.assignment(n) for n in self.worker_ports}
            except OSError:
                return False
            owned = [p for a in got.values() for p in a["partitions"]]
            return (all(a["partitions"] and not a["rebalancing"] for a in got.values())
                    and sorted(owned) == list(range(self.partitions)))
        wait_until(balanced, timeout_s, what="a balanced partition assignment", check=self.check_alive)
        return {n: self.assignment(n)["partitions"] for n in self.worker_ports}

    def restart_crashed_workers(self) -> list[str]:
        """Start again each worker that ended itself with exit 70 (a crashed agent or a stalled
        input, streams/supervise.py), as systemd or Kubernetes would; its uncommitted input is
        read again. Returns the names restarted."""
        from streams.supervise import EXIT_AGENT_CRASHED

        out = []
        for name, child in list(self.children.items()):
            if name in self.worker_ports and not child.alive() and child.popen.returncode == EXIT_AGENT_CRASHED:
                self.children.pop(name)
                self.start_worker(name)
                out.append(name)
        return out

    def check_alive(self) -> None:
        for name, child in self.children.items():
            if not child.alive():
                raise RuntimeError(f"{name} (pid {child.pid}) exited with {child.popen.returncode}; "
                                   f"last lines of {child.log_path}:\n{child.tail()}")

    def provision(self, publisher, accounts, now_ms: int, timeout_s: float = 120.0) -> None:
        """Send each account's provision command and wait until every one's first state row has
        landed, so CDRs published next never meet an unknown account."""
        before = self.sink_status()["landed"].get("account_state_history", 0)
        publisher.commands(a.provision_command(now_ms) for a in accounts)
        publisher.flush()
        need = before + len(accounts)
        wait_until(lambda: self.sink_status()["landed"].get("account_state_history", 0) >= need, timeout_s,
                   what=f"{len(accounts)} accounts to be provisioned", check=self.check_alive)

    def diagnostics(self, log_lines: int = 25) -> str:
        """What a timed-out wait needs to be understood from a CI log alone: progress counters of
        every process and the tail of each process's log."""
        parts = []
        try:
            parts.append(f"sink status: {json.dumps(self.sink_status(), sort_keys=True)[:2000]}")
        except Exception as exc:  # noqa: BLE001 - diagnostics must not mask the timeout
            parts.append(f"sink status: unavailable ({exc})")
        for name in self.worker_ports:
            try:
                parts.append(f"{name} stats: {json.dumps(self.worker_stats(name), sort_keys=True)[:2000]}")
                parts.append(f"{name} assignment: {json.dumps(self.assignment(name), sort_keys=True)}")
            except Exception as exc:  # noqa: BLE001
                parts.append(f"{name} stats: unavailable ({exc})")
        for name, child in self.children.items():
            parts.append(f"--- last {log_lines} lines of {name} (pid {child.pid}, "
                         f"{'alive' if child.alive() else 'exited'}) {child.log_path}:\n{child.tail(log_lines)}")
        return "\n".join(parts)

    def stop_child(self, name: str) -> None:
        self.worker_ports.pop(name, None)
        child = self.children.pop(name, None)
        if child:
            child.stop()
            log.info("stopped %s pid=%s rc=%s", name, child.pid, child.popen.returncode)

    def stop(self) -> None:
        # Producers of data stop first so the sink can land what they sent, and the broker last.
        for name in [n for n in self.children if n.startswith("worker")]:
            self.stop_child(name)
        self.stop_child("sink")
        for name in list(self.children):
            self.stop_child(name)

    def __enter__(self) -> "LocalStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_until(pred, timeout_s: float, interval_s: float = 0.5, what: str = "condition",
               check=None, diag=None) -> None:
    """Poll ``pred``; ``check`` raises early if a process died. On timeout the error carries
    ``diag()`` (by default the stack's diagnostics when ``check`` is a stack's ``check_alive``)."""
    if diag is None and isinstance(getattr(check, "__self__", None), LocalStack):
        diag = check.__self__.diagnostics
    deadline = time.monotonic() + timeout_s
    while not pred():
        if check:
            check()
        if time.monotonic() > deadline:
            detail = ""
            if diag:
                try:
                    detail = "\n" + diag()
                except Exception as exc:  # noqa: BLE001
                    detail = f"\n(diagnostics failed: {exc})"
            raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}{detail}")
        time.sleep(interval_s)
