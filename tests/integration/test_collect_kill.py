"""`cdrflow collect` SIGKILLed in the middle of a file, then restarted, against a real tansu broker.

Proof of "no loss, no double charge": every CDR key of every spool file reaches cdr.raw (the
re-read file's records come twice on the topic, under the same keys, which the charge stage
counts as duplicates), every file ends in done/, nothing stays in the spool, and a file dropped
into the spool again after it was published is not published again.
"""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streams import codecs, formats, topics
from streams.core.keys import cdr_key
from streams.core.sources import SourceDirectory
from tests.support.broker import broker  # noqa: F401 - module-scoped fixture

pytestmark = pytest.mark.integration
FIX = Path(__file__).resolve().parents[1] / "fixtures" / "switches"
ROOT = Path(__file__).resolve().parents[2]
CDRFLOW = str(Path(sys.executable).parent / "cdrflow")
FILES, LINES = 4, 4000
SOURCES = SourceDirectory.from_dict({"default": {"country": "NL", "timezone": "Europe/Amsterdam"}})


def spool_file(path: Path, n: int) -> None:
    """An Asterisk Master.csv of LINES answered calls, each with its own uniqueid/linkedid."""
    template = (FIX / "asterisk_Master.csv").read_text().splitlines()[0]
    assert template.count('"1759910400.1"') == 2 and template.endswith(",11")
    lines = []
    for i in range(LINES):
        uid = f"17599{n:05d}.{i}"
        lines.append(template.replace('"1759910400.1"', f'"{uid}"')[:-3] + f",{i + 1}")
    path.write_text("\n".join(lines) + "\n")


def keys_of_message(value: bytes) -> list[str]:
    name, recs = codecs.decode_container(value)
    out = []
    for rec in recs:
        c = formats.to_switch_cdr(name, rec, SOURCES.context_for)
        out.append(cdr_key(c["switch_id"], c["call_id"], c["leg"] or "A", c["partial_seq"]))
    return out


def drain(conf: dict, topic: str, quiet_s: float = 3.0, limit_s: float = 90.0) -> list[bytes]:
    """Everything on ``topic``: read until nothing new for ``quiet_s`` (bounded by ``limit_s``)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({**conf, "group.id": f"test-collect-{time.monotonic_ns()}", "enable.auto.commit": False})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    out: list[bytes] = []
    end = time.monotonic() + limit_s
    last = time.monotonic()
    while time.monotonic() < end and time.monotonic() - last < quiet_s:
        m = c.poll(0.2)
        if m is not None and not m.error():
            out.append(m.value())
            last = time.monotonic()
    c.close()
    return out


def collect(conf: dict, spool: Path, *extra: str) -> list[str]:
    return [CDRFLOW, "collect", str(spool), "--format", "asterisk-csv", "--switch-id", "ast-spool",
            "--batch-size", "100", "--settle", "0", "--bootstrap", conf["bootstrap.servers"], *extra]


def manifest_rows(spool: Path) -> list[tuple]:
    db = spool / ".cdrflow-manifest.sqlite"
    if not db.exists():
        return []
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT path, state FROM files ORDER BY rowid").fetchall()
        finally:
            con.close()
    except sqlite3.OperationalError:   # table not created yet
        return []


def test_sigkill_mid_file_loses_nothing_and_publishes_each_file_once(broker, tmp_path):
    spool = tmp_path / "spool"
    spool.mkdir()
    for n in range(FILES):
        spool_file(spool / f"Master-{n}.csv", n)
    all_keys = set()
    for p in spool.iterdir():
        items = formats.parse_file("asterisk-csv", p, "ast-spool")
        for it in items:
            c = formats.to_switch_cdr(formats.ASTERISK, it.record, SOURCES.context_for)
            all_keys.add(cdr_key(c["switch_id"], c["call_id"], c["leg"] or "A", c["partial_seq"]))
    assert len(all_keys) == FILES * LINES

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "collect1.log").open("w")
    child = subprocess.Popen(collect(broker, spool, "--interval", "0.2"), stdout=log, stderr=log, env=env, cwd=ROOT)
    try:
        # Kill once the second file is being published: one file done, one mid-way.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = manifest_rows(spool)
            if len(rows) >= 2 and rows[-1][1] == "publishing":
                break
            assert child.poll() is None, (tmp_path / "collect1.log").read_text()
            time.sleep(0.005)
        else:
            pytest.fail("collect never started the second file")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
    rows = manifest_rows(spool)
    assert [s for _, s in rows][:2] == ["done", "publishing"], rows  # killed mid-file
    left = sorted(p.name for p in spool.iterdir() if p.is_file() and not p.name.startswith("."))
    assert len(left) == FILES - 1, left      # the killed file is still in the spool

    r = subprocess.run(collect(broker, spool, "--once"), capture_output=True, text=True, timeout=180, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in spool.iterdir() if not p.name.startswith(".")) == ["done"]
    assert sorted(p.name for p in (spool / "done").iterdir()) == sorted(f"Master-{n}.csv" for n in range(FILES))
    states = [s for _, s in manifest_rows(spool)]
    assert states == ["done"] * FILES

    keys = [k for v in drain(broker, topics.RAW) for k in keys_of_message(v)]
    assert set(keys) == all_keys                    # nothing lost
    # Only the killed file can have come twice (and only the part sent before the kill).
    assert FILES * LINES <= len(keys) < FILES * LINES + LINES

    # The same file dropped in again is recognised by (path, size, hash) and not published.
    again = spool / "Master-0.csv"
    again.write_bytes((spool / "done" / "Master-0.csv").read_bytes())
    before = len(keys)
    r = subprocess.run(collect(broker, spool, "--once"), capture_output=True, text=True, timeout=120, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    assert not again.exists() and (spool / "done" / "Master-0.csv.1").exists()
    assert len([k for v in drain(broker, topics.RAW) for k in keys_of_message(v)]) == before
