"""`cdrflow up` starts again a worker that stopped itself with exit 70 (streams/supervise.py),
as systemd or Kubernetes would, and still treats any other exit as fatal."""
from __future__ import annotations

import sys
import time

import pytest

from streams.local.procs import spawn
from streams.local.stack import LocalStack


def _exited(tmp_path, name: str, code: int):
    child = spawn(name, [sys.executable, "-c", f"import sys; sys.exit({code})"], tmp_path / "logs")
    deadline = time.monotonic() + 30
    while child.alive() and time.monotonic() < deadline:
        time.sleep(0.05)
    return child


def test_a_worker_that_stopped_itself_is_started_again(tmp_path, monkeypatch):
    stack = LocalStack(tmp_path)
    stack.children["worker-1"] = _exited(tmp_path, "worker-1", 70)
    stack.worker_ports["worker-1"] = 1
    started = []
    monkeypatch.setattr(stack, "start_worker", lambda name: started.append(name))
    assert stack.restart_crashed_workers() == ["worker-1"]
    assert started == ["worker-1"]


def test_other_exits_are_not_restarted_and_stop_the_stack(tmp_path, monkeypatch):
    stack = LocalStack(tmp_path)
    stack.children["worker-1"] = _exited(tmp_path, "worker-1", 2)     # a configuration error
    stack.children["sink"] = _exited(tmp_path, "sink", 70)             # not a worker
    stack.worker_ports["worker-1"] = 1
    monkeypatch.setattr(stack, "start_worker", lambda name: pytest.fail("restarted"))
    assert stack.restart_crashed_workers() == []
    with pytest.raises(RuntimeError, match="exited with"):
        stack.check_alive()
