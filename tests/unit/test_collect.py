"""streams.collect without a broker: which files count as closed, the manifest across restarts,
done/ and failed/ with the reason, and a crash between the steps of one file."""
from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import fastavro
import pytest

from streams import codecs, formats
from streams.collect import Collector, closed_files
from streams.formats import freeswitch
from streams.formats.avro_file import iter_records, read_header

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "switches"


class FakePublish:
    def __init__(self, damage: dict[str, list[str]] | None = None, crash_on: str | None = None):
        self.calls: list[str] = []
        self.damage = damage or {}
        self.crash_on = crash_on

    def __call__(self, path: Path):
        self.calls.append(path.name)
        if path.name == self.crash_on:
            raise KeyboardInterrupt  # stands for the process dying mid-file
        return 3, 1, self.damage.get(path.name, [])


def old(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    t = time.time() - 60
    os.utime(path, (t, t))
    return path


def test_in_flight_names_and_fresh_files_are_left_alone(tmp_path):
    old(tmp_path / "a.csv", b"x")
    old(tmp_path / ".hidden", b"x")
    old(tmp_path / "b.csv.part", b"x")
    old(tmp_path / "c.tmp", b"x")
    (tmp_path / "fresh.csv").write_bytes(b"x")
    (tmp_path / "done").mkdir()
    assert [p.name for p in closed_files(tmp_path, settle_s=10)] == ["a.csv"]


def test_done_failed_with_reason_and_the_manifest_survives_a_restart(tmp_path):
    old(tmp_path / "good.csv", b"1\n2\n")
    old(tmp_path / "bad.avro", b"Obj\x01...")
    pub = FakePublish(damage={"bad.avro": ["bad.avro:4: undecodable: byte 99, after record 3"]})
    c = Collector(tmp_path, pub, settle_s=1)
    st = c.run_once()
    c.close()
    assert (st.published, st.failed, st.records, st.rejected) == (1, 1, 6, 2)
    assert (tmp_path / "done" / "good.csv").read_bytes() == b"1\n2\n"
    assert (tmp_path / "failed" / "bad.avro.reason").read_text() == "bad.avro:4: undecodable: byte 99, after record 3\n"

    # The same content dropped in again, seen by a new process: not published again.
    old(tmp_path / "good.csv", b"1\n2\n")
    c = Collector(tmp_path, pub, settle_s=1)
    st = c.run_once()
    assert (st.published, st.skipped) == (0, 1)
    assert pub.calls == ["bad.avro", "good.csv"] or pub.calls == ["good.csv", "bad.avro"]
    assert (tmp_path / "done" / "good.csv.1").exists()
    # Same path, other content: a new file, published.
    old(tmp_path / "good.csv", b"1\n2\n3\n")
    st = c.run_once()
    assert st.published == 1 and pub.calls[-1] == "good.csv"
    c.close()


def test_a_file_whose_publish_died_is_published_again_on_restart(tmp_path):
    old(tmp_path / "x.csv", b"1\n")
    c = Collector(tmp_path, FakePublish(crash_on="x.csv"), settle_s=1)
    with pytest.raises(KeyboardInterrupt):
        c.run_once()
    c.close()
    assert (tmp_path / "x.csv").exists()
    assert [r[3] for r in Collector(tmp_path, FakePublish(), settle_s=1).manifest.rows()] == ["publishing"]
    pub = FakePublish()
    c = Collector(tmp_path, pub, settle_s=1)
    st = c.run_once()
    assert pub.calls == ["x.csv"] and st.published == 1
    assert [(r[3], r[5]) for r in c.manifest.rows()] == [("done", 2)]   # the killed attempt and this one
    c.close()


def _container(n: int) -> tuple[bytes, list[int]]:
    recs = [p.record for p in formats.parse_file("asterisk-csv", FIX / "asterisk_Master.csv", "ast-1") if p.record][:n]
    buf = io.BytesIO()
    fastavro.writer(buf, codecs.book().parsed[formats.ASTERISK], recs, codec="deflate", sync_interval=1)
    data = buf.getvalue()
    return data, [i for i in range(len(data)) if data.startswith(data[-16:], i)]


@pytest.mark.parametrize("damage", ["sync", "truncate", "garbage"])
def test_a_damaged_container_yields_the_blocks_before_the_damage_then_one_fatal_reject(damage):
    data, at = _container(5)
    block4 = at[3] + 16
    if damage == "sync":
        data = data[:at[4] + 3] + b"\x00" + data[at[4] + 4:]
    elif damage == "truncate":
        data = data[:block4 + 10]
    else:
        data = data[:block4 + 4] + b"\xff" * 8 + data[block4 + 12:]
    name, parsed, codec, sync, pos = read_header(data)
    out = list(iter_records(data, parsed, codec, sync, pos))
    assert [p.line for p in out if p.record] == [1, 2, 3]
    last = out[-1]
    assert last.fatal and last.line == 4 and last.error.reason.value == "undecodable"
    assert f"byte {block4}, after record 3" in last.error.detail
    assert last.raw == data[block4:]


def test_deep_json_lines_lose_only_the_deep_line():
    call = (FIX / "freeswitch_call.json").read_text()
    one = json.dumps(json.loads(call)).encode()
    data = one + b"\n" + b"[" * 100_000 + b"]" * 100_000 + b"\n" + one.replace(b"0001-4000", b"0002-4000") + b"\n"
    out = list(freeswitch.parse_text(data))
    assert [(p.line, p.record is not None, p.fatal) for p in out] == [(1, True, False), (2, False, False), (3, True, False)]


def test_a_deep_single_document_is_one_fatal_reject():
    out = list(freeswitch.parse_text(b"  " + b"{\"a\":" * 100_000 + b"1" + b"}" * 100_000))
    assert len(out) == 1 and out[0].fatal and "line 1 column 3" in out[0].error.detail
