"""Child processes started by the local stack: started, watched and stopped by PID only."""
from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("cdrflow.local")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout_s: float, proc: "Child | None" = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode} before listening; "
                               f"see {proc.log_path}:\n{proc.tail()}")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout_s}s")


@dataclass
class Child:
    name: str
    popen: subprocess.Popen
    log_path: Path
    _fh: object = field(repr=False, default=None)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 20.0) -> int | None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                log.warning("%s pid=%s ignored SIGTERM for %ss; killing", self.name, self.pid, timeout_s)
                self.popen.kill()
                self.popen.wait(10)
        if self._fh:
            self._fh.close()
        return self.popen.returncode

    def kill(self) -> None:
        """SIGKILL: used by crash tests to stop a process mid-batch."""
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
            self.popen.wait(10)


def spawn(name: str, argv: list[str], log_dir: Path, env: dict | None = None) -> Child:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    fh = open(log_path, "ab")
    popen = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env={**os.environ, **(env or {})})
    log.info("started %s pid=%s log=%s", name, popen.pid, log_path)
    return Child(name, popen, log_path, fh)
