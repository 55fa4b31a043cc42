"""The image's entry points run as the image runs them (deploy/Dockerfile): user nobody, a
root-owned read-only working directory, and a writable CDRFLOW_DATA_DIR. No Docker engine is
needed: the same user, directories and settings are reproduced with setpriv.

When the tests do not run as root, the current user stands in for nobody and the working
directory is made read-only with chmod (root would ignore the mode, hence the user switch)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from streams.local.procs import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
CDRFLOW = str(Path(sys.executable).parent / "cdrflow")
NOBODY = 65534
WAIT_S = 120


@pytest.fixture()
def image_dirs():
    """/app (read-only, root-owned) and /var/lib/cdrflow (owned by the image's user)."""
    base = Path(tempfile.mkdtemp(prefix="cdrflow-image-", dir="/tmp"))
    os.chmod(base, 0o755)                        # nobody must reach the directories inside
    app, data = base / "app", base / "data"
    app.mkdir()
    data.mkdir()
    if os.geteuid() == 0:
        os.chown(data, NOBODY, NOBODY)
    os.chmod(app, 0o555)
    opened = _let_others_traverse(ROOT, Path(sys.executable).resolve().parent) if os.geteuid() == 0 else []
    try:
        yield app, data
    finally:
        for path, mode in opened:
            os.chmod(path, mode)
        os.chmod(app, 0o755)
        shutil.rmtree(base, ignore_errors=True)


def _let_others_traverse(*paths: Path) -> list[tuple[Path, int]]:
    """Give 'others' search permission on the ancestors of the checkout and the interpreter that
    lack it, and return their old modes. A checkout under a private directory (mktemp -d makes
    0700 ones, as CI's fresh clone does) is unreachable for nobody; in the image the installed
    package sits in world-readable /app, so this only recreates that reachability."""
    opened: list[tuple[Path, int]] = []
    for start in paths:
        for d in [start, *start.parents]:
            mode = d.stat().st_mode & 0o7777
            if not mode & 0o001 and d not in [p for p, _ in opened]:
                os.chmod(d, mode | 0o001)
                opened.append((d, mode))
    return opened


def _as_image_user(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]
    return argv


def _image_env(data: Path, bootstrap: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CDRFLOW_")}
    env.update({"CDRFLOW_DATA_DIR": str(data), "HOME": str(data), "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONUNBUFFERED": "1", "CDRFLOW_KAFKA_BOOTSTRAP": bootstrap, **extra})
    return env


def _wait_http(url: str, proc: subprocess.Popen, log: Path) -> dict:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=3) as r:
                return json.load(r)
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url} did not answer in {WAIT_S}s:\n{log.read_text(errors='replace')[-4000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture()
def tansu(tmp_path):
    from streams.local.broker import create_topics, start_tansu

    child, bootstrap = start_tansu(tmp_path / "tansu")
    try:
        create_topics({"bootstrap.servers": bootstrap}, 8, 4)
        yield bootstrap
    finally:
        child.stop()


def test_worker_starts_as_nobody_in_a_read_only_app_dir_and_takes_its_arguments(tansu, image_dirs, tmp_path):
    app, data = image_dirs
    port = free_port()
    log = tmp_path / "worker.log"
    with open(log, "wb") as fh:
        # --web-port is a Faust worker option given on the command line: it must reach Faust.
        proc = subprocess.Popen(_as_image_user([CDRFLOW, "worker", "--web-port", str(port)]), cwd=app,
                                env=_image_env(data, tansu, CDRFLOW_WEB_PORT="1"), stdout=fh,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            stats = _wait_http(f"http://127.0.0.1:{port}/cdrflow/stats", proc, log)
            assert isinstance(stats, dict)
        finally:
            _stop(proc)
    assert list(app.iterdir()) == []
    assert (data / "faust").is_dir()            # Faust's data directory follows CDRFLOW_DATA_DIR


def test_sink_starts_as_nobody_takes_its_arguments_and_logs_at_info(tansu, image_dirs, tmp_path):
    app, data = image_dirs
    port = free_port()
    log = tmp_path / "sink.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(_as_image_user([CDRFLOW, "sink", "--status-port", str(port),
                                                "--clickhouse", f"chdb://{data / 'chdb'}"]),
                                cwd=app, env=_image_env(data, tansu), stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        try:
            status = _wait_http(f"http://127.0.0.1:{port}/status", proc, log)
            assert "landed" in status
        finally:
            _stop(proc)
    text = log.read_text(errors="replace")
    assert " INFO cdrflow.sink event=sink_start" in text, text[-3000:]
    assert proc.returncode == 0, text[-3000:]
    assert list(app.iterdir()) == []


def test_sink_help_is_the_sinks_own():
    r = subprocess.run([CDRFLOW, "sink", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "--status-port" in r.stdout and "--status-host" in r.stdout
