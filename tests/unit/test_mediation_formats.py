"""Normalizer over every raw wire shape: framed records of each type, SwitchBatch, containers,
registry ids; rejects keep single-record raw bytes that re-decode to the same CDR key."""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from streams import codecs, formats
from streams.core.reasons import Reason
from streams.core.sources import SourceDirectory
from streams.local.badinput import corpus
from streams.mediation import Normalizer
from streams.msg import Msg

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "switches"
NOW = 1_760_000_000_000
SOURCES = SourceDirectory.from_dict({"default": {"country": "NL", "timezone": "Europe/Amsterdam"}})


def first(fmt: str, name: str, switch_id: str = "sw-1") -> dict:
    return next(p.record for p in formats.parse_file(fmt, FIX / name, switch_id) if p.record)


def samples() -> dict[str, dict]:
    return {
        formats.ASTERISK: first("asterisk-csv", "asterisk_Master.csv"),
        formats.FREESWITCH: first("freeswitch-json", "freeswitch_call.json"),
        formats.KAMAILIO: first("kamailio-acc", "kamailio_acc.dbtext"),
        formats.TS32298: json.loads((FIX / "ts32298_records.json").read_text())[3],
        formats.SWITCH_CDR: {"switch_id": "sw-1", "call_id": "g-1", "account": "acct-9", "direction": "outbound",
                             "caller": "0201234567", "called": "0612345678", "start_ms": NOW - 60_000,
                             "answer_ms": None, "end_ms": NOW - 30_000, "duration_s": 30, "billsec_s": 0,
                             "disposition": "NO ANSWER"},
    }


def cdrs_of(res):
    return sorted((c for v in res.by_partition.values() for c in v), key=lambda c: (c["source_offset"], c["source_index"]))


def test_every_type_single_framed_and_in_a_switch_batch():
    recs = samples()
    n = Normalizer(8, SOURCES)
    single = n.run([Msg("cdr.raw", 0, i, NOW, codecs.encode(t, r)) for i, (t, r) in enumerate(recs.items())], NOW)
    assert single.normalized == 5 and not single.rejects
    batch = codecs.encode(formats.SWITCH_BATCH, {"records": list(recs.values())})
    res = n.run([Msg("cdr.raw", 1, 99, NOW, batch)], NOW)
    assert res.records_in == 5 and res.normalized == 5
    assert [c["cdr_key"] for c in cdrs_of(single)] == [c["cdr_key"] for c in cdrs_of(res)]
    # A batch item's raw bytes are its own single-record message: recycling it keys the same.
    for c in cdrs_of(res):
        again = n.run([Msg("cdr.raw", 0, 5, NOW, c["raw"])], NOW)
        (c2,) = cdrs_of(again)
        assert c2["cdr_key"] == c["cdr_key"] and c2["raw"] == c["raw"]


@pytest.mark.parametrize("rtype", [formats.ASTERISK, formats.FREESWITCH, formats.KAMAILIO, formats.TS32298, formats.SWITCH_CDR])
def test_containers_of_each_type(rtype):
    rec = samples()[rtype]
    data = codecs.encode_container(rtype, [rec, rec], codec="deflate")
    res = Normalizer(8, SOURCES).run([Msg("cdr.raw", 0, 1, NOW, data)], NOW)
    assert res.records_in == 2 and res.normalized == 2
    a, b = cdrs_of(res)
    assert a["cdr_key"] == b["cdr_key"]            # a re-sent record is a duplicate by key
    assert a["raw"] == codecs.encode(rtype, rec)   # single-record wire bytes, pinned id


def test_mapping_failure_is_a_reject_not_a_crash():
    bad = {**samples()[formats.ASTERISK], "start": "2025-02-30 10:00:00"}   # no 30 February
    wire = codecs.encode(formats.ASTERISK, bad)
    batch = codecs.encode(formats.SWITCH_BATCH, {"records": [samples()[formats.FREESWITCH], bad]})
    res = Normalizer(8, SOURCES).run_safe([Msg("cdr.raw", 2, 10, NOW, wire), Msg("cdr.raw", 2, 11, NOW, batch)], NOW)
    assert res.records_in == 3 and res.normalized == 1 and len(res.rejects) == 2
    for r in res.rejects:
        assert r["reason"] == Reason.BAD_FIELD_TYPE.value and "AsteriskCdr" in r["detail"]
        assert r["raw"] == wire and r["account"] == "acct-100"
    assert [(r["source_offset"], r["source_index"]) for r in res.rejects] == [(10, 0), (11, 1)]


def test_unsupported_types_and_bad_bytes_reject_and_balance():
    tmpl = samples()[formats.SWITCH_CDR]
    bad = corpus(tmpl, NOW)
    msgs = [Msg("cdr.raw", 0, i, NOW, b) for i, (_, b) in enumerate(bad)]
    msgs.append(Msg("cdr.raw", 0, 50, NOW, codecs.encode_batch(codecs.CANONICAL_BATCH, [])))
    msgs.append(Msg("cdr.raw", 0, 51, NOW, codecs.encode_container(codecs.REJECTED, [])))
    res = Normalizer(8, SOURCES).run_safe(msgs, NOW)
    assert res.records_in == res.normalized + len(res.rejects)
    got = {r["source_offset"]: r["reason"] for r in res.rejects}
    want = {i: reason.value for i, (reason, _) in enumerate(bad) if reason is not Reason.UNKNOWN_ACCOUNT}
    assert got == {**want, 50: "unsupported_format", 51: "unsupported_format"}


def test_registry_wire_round_trip_and_newer_writer():
    # confluent_kafka.schema_registry needs authlib + cachetools (extra "schemaregistry").
    warnings.simplefilter("ignore")
    from fastavro import parse_schema, schemaless_writer
    from confluent_kafka.schema_registry import Schema
    import io

    from streams.registry import RegistryWire, inline_schema

    wire = RegistryWire.from_url("mock://mediation")
    recs = samples()
    n = Normalizer(8, SOURCES, wire=wire)
    msgs = [Msg("cdr.raw", 0, i, NOW, wire.encode(t, r)) for i, (t, r) in enumerate(recs.items())]
    msgs.append(Msg("cdr.raw", 0, 9, NOW, wire.encode(formats.SWITCH_BATCH, {"records": list(recs.values())})))
    res = n.run(msgs, NOW)
    assert res.normalized == 10 and not res.rejects
    # The batch items' raw bytes carry registry ids, not pinned ones.
    assert all(c["raw"][1:5] == wire.schema_id(formats.kind_of(r)).to_bytes(4, "big")
               for c, r in zip(cdrs_of(res)[5:], recs.values()))
    # A producer on a newer SwitchCdr version with an added, defaulted field.
    newer = inline_schema(formats.SWITCH_CDR)
    newer["fields"].append({"name": "operator_location", "type": "string", "default": ""})
    sid = wire.client.register_schema(formats.SWITCH_CDR, Schema(json.dumps(newer), "AVRO"))
    buf = io.BytesIO()
    buf.write(b"\x00" + int(sid).to_bytes(4, "big"))
    full = {**{f["name"]: f.get("default") for f in newer["fields"] if "default" in f}, **recs[formats.SWITCH_CDR],
            "operator_location": "AMS"}
    schemaless_writer(buf, parse_schema(newer), full)
    res = n.run([Msg("cdr.raw", 0, 20, NOW, buf.getvalue())], NOW)
    assert res.normalized == 1, res.rejects
    # Unknown ids are UNKNOWN_SCHEMA, as with pinned ids.
    res = n.run([Msg("cdr.raw", 0, 21, NOW, b"\x00\x00\x00\x30\x39" + b"\x00" * 8)], NOW)
    assert res.rejects[0]["reason"] == "unknown_schema"


def test_switchcdr_container_path_equals_plain_normalize_batch():
    """The container path (decode once, keep raw bytes, route) must produce exactly what
    decoding each record and running normalize_batch by hand produces. Its speed is measured by
    `cdrflow bench` (normalize stage), not here: timed assertions in unit tests are flaky."""
    from streams.core.normalize import normalize_batch

    base = samples()[formats.SWITCH_CDR]
    recs = [{**base, "call_id": f"c{i}", "account": f"a{i % 50}"} for i in range(5000)]
    msgs = [Msg("cdr.raw", 0, i, NOW, codecs.encode_container(codecs.SWITCH_CDR, recs[i * 500:(i + 1) * 500]))
            for i in range(10)]
    res = Normalizer(8, SOURCES).run(msgs, NOW)

    raws = []
    for m in msgs:
        _, rs = codecs.decode_container(m.value)
        raws.extend(rs)
    want, rejected = normalize_batch(raws, lambda r: SOURCES.context_for(r.get("switch_id"), r.get("trunk")), NOW)
    assert not rejected and not res.rejects
    assert res.records_in == res.normalized == len(want) == 5000
    got = sorted((c for part in res.by_partition.values() for c in part),
                 key=lambda c: (c["source_offset"], c["source_index"]))
    provenance = ("source_topic", "source_partition", "source_offset", "source_index", "ingest_ms", "raw")
    assert [{k: v for k, v in c.items() if k not in provenance} for c in got] == want
    # Each record keeps its own raw bytes and position, so a reject or replay can point at it.
    assert [(c["source_offset"], c["source_index"]) for c in got] == [(i // 500, i % 500) for i in range(5000)]
    assert all(codecs.decode(c["raw"])[1]["call_id"] == f"c{i}" for i, c in enumerate(got[:50]))
