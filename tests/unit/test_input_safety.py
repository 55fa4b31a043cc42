"""Hostile sizes and foreign writer schemas on cdr.raw (issue 15.3, 15.4, 16.3): every reject
keeps the bytes it came from, decompression and string fields are bounded, and big files are
normalised in bounded chunks."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap

import fastavro

from streams import codecs
from streams.mediation import Normalizer
from streams.msg import Msg
from streams.core.sources import SourceDirectory

NOW = 1_760_000_000_000
SOURCES = SourceDirectory.from_dict({"default": {"country": "NL", "timezone": "Europe/Amsterdam"}})
CDR = {"switch_id": "sw-1", "call_id": "g-1", "leg": "A", "partial_seq": 0, "partial_final": True,
       "correlation_id": None, "account": "acct-9", "service_user": None, "direction": "outbound",
       "caller": "0201234567", "presented_cli": None, "called": "0612345678", "trunk": None,
       "start_ms": NOW - 60_000, "answer_ms": None, "end_ms": NOW - 30_000, "duration_s": 30, "billsec_s": 0,
       "disposition": "NO ANSWER", "service": "voice", "operator_location": None, "operator_dedicated": None}


def writer_schema(drop=(), retype=None) -> dict:
    """Our SwitchCdr schema as a switch with another version of it might write it."""
    s = json.loads(json.dumps(codecs.book().parsed[codecs.SWITCH_CDR], default=str))
    s = {k: v for k, v in s.items() if not k.startswith("__")}
    s["fields"] = [dict(f, type=(retype or {}).get(f["name"], f["type"])) for f in s["fields"] if f["name"] not in drop]
    return s


def container(schema: dict, records: list[dict], codec: str = "null") -> bytes:
    buf = io.BytesIO()
    fastavro.writer(buf, fastavro.parse_schema(schema), records, codec=codec)
    return buf.getvalue()


def cdrs(res):
    return [c for part in res.by_partition.values() for c in part]


def test_item_of_a_writer_schema_without_account_is_rejected_with_its_bytes():
    rec = {k: v for k, v in CDR.items() if k != "account"}
    data = container(writer_schema(drop=("account",)), [rec, {**rec, "call_id": "g-2"}], codec="deflate")
    res = Normalizer(8, SOURCES).run([Msg("cdr.raw", 3, 40, NOW, data)], NOW)
    assert res.records_in == 2 and res.normalized == 0
    assert [(r["reason"], r["source_index"]) for r in res.rejects] == [("unmapped_account", 0), ("unmapped_account", 1)]
    for r, want in zip(res.rejects, ["g-1", "g-2"]):
        assert r["raw"], "a reject must carry the bytes it came from"
        name, (back,) = codecs.decode_container(r["raw"])       # the writer's own schema travels with it
        assert name == codecs.SWITCH_CDR and back == {**rec, "call_id": want}
        # Re-publishing the bytes gives the same reject again, never a different record.
        again = Normalizer(8, SOURCES).run([Msg("cdr.raw", 0, 1, NOW, r["raw"])], NOW)
        assert [x["reason"] for x in again.rejects] == ["unmapped_account"] and again.rejects[0]["raw"] == r["raw"]


def test_item_with_a_double_duration_keeps_the_writers_value_in_its_raw_bytes():
    rec = {**CDR, "duration_s": 30.5}
    data = container(writer_schema(retype={"duration_s": "double"}), [rec])
    res = Normalizer(8, SOURCES).run([Msg("cdr.raw", 0, 7, NOW, data)], NOW)
    (r,) = res.rejects
    assert r["reason"] == "bad_field_type" and r["raw"]
    # Not coerced to our int schema on the way: the reject shows what the switch really sent.
    assert codecs.decode_container(r["raw"])[1] == [rec]


def test_foreign_writer_that_fits_keeps_compact_raw_for_accepted_records():
    # A newer writer with an added field: accepted records carry our single-record wire bytes.
    s = writer_schema()
    s["fields"].append({"name": "site", "type": "string", "default": ""})
    res = Normalizer(8, SOURCES).run([Msg("cdr.raw", 0, 1, NOW, container(s, [{**CDR, "site": "AMS"}]))], NOW)
    (c,) = cdrs(res)
    assert c["raw"] == codecs.encode(codecs.SWITCH_CDR, CDR)


def test_two_mib_call_id_is_rejected_as_oversize_field():
    big = {**CDR, "call_id": "x" * (2 << 20)}
    single = codecs.encode(codecs.SWITCH_CDR, big)
    data = codecs.encode_container(codecs.SWITCH_CDR, [CDR, big])
    res = Normalizer(8, SOURCES).run([Msg("cdr.raw", 0, 1, NOW, single), Msg("cdr.raw", 0, 2, NOW, data)], NOW)
    assert res.records_in == 3 and res.normalized == 1
    assert [(r["reason"], r["source_offset"], r["source_index"]) for r in res.rejects] == [
        ("oversize_field", 1, 0), ("oversize_field", 2, 1)]
    assert res.rejects[0]["raw"] == single and "call_id" in res.rejects[0]["detail"]
    assert codecs.decode(res.rejects[1]["raw"])[1]["call_id"] == big["call_id"]
    # The limit is a setting: a deployment with long ids can raise it.
    res = Normalizer(8, SOURCES, max_field_chars=3 << 20).run([Msg("cdr.raw", 0, 1, NOW, single)], NOW)
    assert res.normalized == 1


def test_unknown_container_codec_is_rejected_with_a_reason():
    data = container(writer_schema(), [CDR])
    meta_codec = data.replace(b"\x14avro.codec\x08null", b"\x14avro.codec\x08zzzz", 1)
    assert meta_codec != data
    res = Normalizer(8, SOURCES).run([Msg("cdr.raw", 0, 1, NOW, meta_codec)], NOW)
    assert [r["reason"] for r in res.rejects] == ["unsupported_format"] and res.rejects[0]["raw"] == meta_codec


BOMB = textwrap.dedent('''
    import gc, resource, sys, zlib
    from streams import codecs
    from streams.mediation import Normalizer
    from streams.msg import Msg

    inflated = int(sys.argv[1])
    # A valid container header, then one deflate block of zeros that inflates to `inflated` bytes.
    head = codecs.encode_container(codecs.SWITCH_CDR, [])
    sync = head[-16:]
    z = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    parts = [z.compress(chunk) for _ in range(inflated >> 20)]
    parts.append(z.flush())
    block = b"".join(parts)
    del parts, z, chunk
    head = head.replace(b"\\x08null", b"\\x0edeflate", 1)
    def long(n):
        n = (n << 1) ^ (n >> 63); out = bytearray()
        while n & ~0x7F:
            out.append((n & 0x7F) | 0x80); n >>= 7
        out.append(n); return bytes(out)
    data = head + long(1000) + long(len(block)) + block + sync
    n = Normalizer(8)
    n.run([Msg("cdr.raw", 0, 0, 0, codecs.encode_container(codecs.SWITCH_CDR, []))], 0)   # warm imports
    gc.collect()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    res = n.run([Msg("cdr.raw", 0, 1, 0, data)], 1_760_000_000_000)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(len(data), (after - before) * 1024, [r["reason"] for r in res.rejects][:3], res.normalized)
''')


def test_deflate_bomb_is_rejected_without_inflating_it():
    # 256 MiB of zeros deflates to ~250 KiB; the cap (32 MiB by default) stops inflating at once.
    out = subprocess.run([sys.executable, "-c", BOMB, str(256 << 20)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    size, grew, reasons, normalized = out.stdout.split(" ", 3)
    assert int(size) < 1 << 20
    assert reasons.startswith("['oversize']") and normalized.strip() == "0"
    # Peak RSS growth stays near the cap, far from the 256 MiB the block would inflate to.
    assert int(grew) < 80 << 20, f"RSS grew by {int(grew) >> 20} MiB"


def test_declared_record_count_over_the_limit_is_rejected_before_decoding():
    data = codecs.encode_container(codecs.SWITCH_CDR, [CDR] * 30)
    res = Normalizer(8, SOURCES, max_batch_records=20).run([Msg("cdr.raw", 0, 1, NOW, data)], NOW)
    assert [r["reason"] for r in res.rejects] == ["array_bomb"] and res.records_in == 1


def test_big_file_is_normalised_in_bounded_chunks():
    recs = [{**CDR, "call_id": f"c{i}", "account": f"a{i % 7}"} for i in range(250)]
    recs[120] = {**recs[120], "duration_s": -1}
    msgs = [Msg("cdr.raw", 0, 5, NOW, codecs.encode_container(codecs.SWITCH_CDR, recs, codec="deflate")),
            Msg("cdr.raw", 0, 6, NOW, codecs.encode(codecs.SWITCH_CDR, {**CDR, "call_id": "after"}))]
    n = Normalizer(8, SOURCES)
    parts = list(n.iter_results(msgs, NOW, 100))
    assert [p.normalized + len(p.rejects) for p in parts] == [100, 100, 51]
    whole = n.run(msgs, NOW)
    assert sum(p.records_in for p in parts) == whole.records_in == 251
    keys = sorted(c["cdr_key"] for p in parts for c in cdrs(p))
    assert keys == sorted(c["cdr_key"] for c in cdrs(whole)) and len(keys) == 250
    assert [r["source_index"] for p in parts for r in p.rejects] == [120]
