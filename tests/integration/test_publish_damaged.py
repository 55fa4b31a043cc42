"""`cdrflow publish` on damaged files, run as the real command against a real tansu broker.

Each damaged file must end in one line naming the file and the position, a non-zero exit and
no traceback; the records before the damage are published exactly once, and the damaged rest
goes to cdr.rejected once, with its bytes.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import fastavro
import pytest

from streams import codecs, formats, topics
from tests.integration.test_publish import consume_all
from tests.support.broker import broker  # noqa: F401 - module-scoped fixture

pytestmark = pytest.mark.integration
FIX = Path(__file__).resolve().parents[1] / "fixtures" / "switches"
ROOT = Path(__file__).resolve().parents[2]


def run_publish(conf: dict, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([str(Path(sys.executable).parent / "cdrflow"), "publish", "--bootstrap",
                           conf["bootstrap.servers"], *args], capture_output=True, text=True, timeout=120,
                          env=env, cwd=ROOT)


def asterisk_records(switch_id: str) -> list[dict]:
    recs = [p.record for p in formats.parse_file("asterisk-csv", FIX / "asterisk_Master.csv", switch_id) if p.record]
    assert len(recs) == 6
    return recs


def one_record_per_block(records: list[dict]) -> tuple[bytes, list[int]]:
    """A container with one record per block, and the offsets of every sync marker (the
    header's first, then one after each block)."""
    buf = io.BytesIO()
    fastavro.writer(buf, codecs.book().parsed[formats.ASTERISK], records, codec="null", sync_interval=1)
    data = buf.getvalue()
    sync = data[-16:]
    at = [i for i in range(len(data)) if data.startswith(sync, i)]
    assert len(at) == 1 + len(records)
    return data, at


def published(conf: dict, expect_messages: int) -> Counter:
    """(switch_id) -> distinct records on cdr.raw, and assert no record came twice."""
    seen = Counter()
    for m in consume_all(conf, topics.RAW, expect_messages, timeout_s=20):
        _, recs = codecs.decode_container(m.value)
        seen.update((r["switch_id"], r.get("uniqueid") or r["uuid"]) for r in recs)
    assert all(n == 1 for n in seen.values()), f"published twice: {[k for k, n in seen.items() if n > 1]}"
    return Counter(sw for sw, _ in seen)


def test_damaged_files_end_in_one_line_keep_the_good_records_and_exit_non_zero(broker, tmp_path):
    # Corrupt sync marker after block 3: blocks 1-2 are good (2 records), block 3 is damaged.
    good, good_sync_at = one_record_per_block(asterisk_records("sync-bad"))
    corrupt = bytearray(good)
    corrupt[good_sync_at[3] + 5] ^= 0xFF
    (tmp_path / "badsync.avro").write_bytes(bytes(corrupt))
    # Truncated 30 bytes into block 4: blocks 1-3 are good (3 records).
    data, sync_at = one_record_per_block(asterisk_records("trunc"))
    (tmp_path / "trunc.avro").write_bytes(data[:sync_at[3] + 16 + 30])
    # FreeSWITCH JSON array: two good calls, then an element nested 100 000 deep, then a good one.
    text = (FIX / "freeswitch_call.json").read_text()
    uuid = "a1b2c3d4-0001-4000-8000-000000000001"
    assert uuid in text
    calls = [json.dumps(json.loads(text.replace(uuid, uuid[:-1] + str(i)))) for i in range(3)]
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "deep.json").write_text(f"[{calls[0]},\n{calls[1]},\n{deep},\n{calls[2]}]")

    runs = {
        "badsync.avro": run_publish(broker, "--format", "avro", str(tmp_path / "badsync.avro")),
        "trunc.avro": run_publish(broker, "--format", "avro", "--batch-size", "1", str(tmp_path / "trunc.avro")),
        "deep.json": run_publish(broker, "--format", "freeswitch-json", "--switch-id", "fs-deep",
                                 str(tmp_path / "deep.json")),
    }
    for name, r in runs.items():
        assert r.returncode == 1, (name, r.returncode, r.stderr[-2000:])
        assert "Traceback" not in r.stderr, r.stderr[-3000:]
        damage = [ln for ln in r.stderr.splitlines() if ln.startswith(f"{tmp_path / name}:")]
        assert len(damage) == 1, r.stderr
        assert "the rest of the file is not read" in damage[0]
    sync_line = next(ln for ln in runs["badsync.avro"].stderr.splitlines() if "badsync.avro:" in ln)
    assert f"badsync.avro:3: undecodable: byte {good_sync_at[2] + 16}, after record 2" in sync_line  # block 3 starts after sync 2
    trunc_line = next(ln for ln in runs["trunc.avro"].stderr.splitlines() if "trunc.avro:" in ln)
    assert "trunc.avro:4: undecodable: byte" in trunc_line and "truncated" in trunc_line
    deep_line = next(ln for ln in runs["deep.json"].stderr.splitlines() if "deep.json:" in ln)
    assert "deep.json:3: unsupported_format: line 3 column 1: array element 3" in deep_line

    # Good records before the damage: 2 + 3 + 2, each exactly once (badsync and deep in one
    # container each, trunc in three of one record).
    counts = published(broker, 1 + 3 + 1)
    assert counts == {"sync-bad": 2, "trunc": 3, "fs-deep": 2}

    rejected = [codecs.decode(m.value)[1] for m in consume_all(broker, topics.REJECTED, 3, timeout_s=20)]
    assert sorted(r["source_topic"] for r in rejected) == ["file:badsync.avro", "file:deep.json", "file:trunc.avro"]
    by_file = {r["source_topic"]: r for r in rejected}
    assert by_file["file:trunc.avro"]["raw"] == data[sync_at[3] + 16:sync_at[3] + 16 + 30]
    assert by_file["file:badsync.avro"]["source_offset"] == 3
