"""cdrflow publish and recycle against a real tansu broker, consuming back what was published."""
from __future__ import annotations

import io
import time
from pathlib import Path

import pytest

from streams import codecs, topics
from streams.cli.publish import publish_files
from streams.cli.recycle import recycle
from streams.core.charge import make_reject
from streams.core.reasons import Reason
from streams.core.sources import SourceDirectory
from streams.mediation import Normalizer
from streams.msg import Msg
from streams.registry import LocalWire
from tests.support.broker import broker  # noqa: F401 - module-scoped fixture

pytestmark = pytest.mark.integration
FIX = Path(__file__).resolve().parents[1] / "fixtures" / "switches"
NOW = 1_760_000_000_000
SOURCES = SourceDirectory.from_dict({"default": {"country": "NL", "timezone": "Europe/Amsterdam"}})




def consume_all(conf: dict, topic: str, expect: int, timeout_s: float = 30) -> list[Msg]:
    """Assign every partition from the beginning until ``expect`` messages are in (tansu's
    high watermark is unreliable, so count instead of trusting lag)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    c = Consumer({**conf, "group.id": "test-publish", "enable.auto.commit": False})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    out: list[Msg] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < expect and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is not None and not m.error():
            out.append(Msg(m.topic(), m.partition(), m.offset(), m.timestamp()[1], m.value()))
    # Anything extra would be a double publish; give it a moment to show up.
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        m = c.poll(0.2)
        if m is not None and not m.error():
            out.append(Msg(m.topic(), m.partition(), m.offset(), m.timestamp()[1], m.value()))
    c.close()
    return out


def test_publish_consume_normalise_recycle(broker):
    err = io.StringIO()
    single = publish_files(broker, "asterisk-csv", [FIX / "asterisk_bad.csv", FIX / "asterisk_Master.csv"],
                           mode="single", switch_id="ast-1", wire=LocalWire(), err=err)
    batch = publish_files(broker, "kamailio-acc", [FIX / "kamailio_acc.dbtext", FIX / "kamailio_acc.jsonl"],
                          mode="batch", switch_id="kam-1", batch_size=2, wire=LocalWire(), err=err)
    fs = publish_files(broker, "freeswitch-json", [FIX / "freeswitch_call.json", FIX / "freeswitch_calls.jsonl"],
                       mode="batch", switch_id="fs-1", wire=LocalWire(), err=err)
    assert (single.records, single.messages, single.rejected) == (12, 12, 4)
    assert (batch.records, batch.messages, batch.rejected) == (6, 4, 3)   # 3 + 3 records in chunks of 2
    assert (fs.records, fs.messages, fs.rejected) == (4, 2, 3)
    assert "asterisk_bad.csv:2: bad_field_type" in err.getvalue()

    raw = consume_all(broker, topics.RAW, 18)
    assert len(raw) == 18
    res = Normalizer(8, SOURCES).run_safe(raw, NOW)
    assert res.records_in == 22 == res.normalized + len(res.rejects)
    assert sorted(r["reason"] for r in res.rejects) == sorted(
        ["invalid_number", "end_before_start", "unmapped_account", "unsupported_format", "bad_duration"])

    rejected = consume_all(broker, topics.REJECTED, 10)
    decoded = [codecs.decode(m.value)[1] for m in rejected]
    assert len(decoded) == 10 and all(r["stage"] == "publish" for r in decoded)
    line2 = next(r for r in decoded if r["source_topic"] == "file:asterisk_bad.csv" and r["source_offset"] == 2)
    assert line2["reason"] == "bad_field_type" and "asterisk_bad.csv:2" in line2["detail"]
    assert line2["raw"] == (FIX / "asterisk_bad.csv").read_bytes().splitlines()[1]

    # A record the charge stage rejected as unknown_account, rejected twice (two replays).
    cdr = next(c for v in res.by_partition.values() for c in v if c["account"] == "acct-100")
    from confluent_kafka import Producer
    p = Producer(broker)
    for off in (1, 2):
        rej = make_reject(Reason.UNKNOWN_ACCOUNT, "not provisioned", "charge", topics.NORMALIZED, 0, off, 0,
                          cdr["raw"], NOW, cdr["cdr_key"], cdr["account"])
        p.produce(topics.REJECTED, codecs.encode(codecs.REJECTED, rej), rej["reject_id"].encode())
    p.flush(10)

    dry = recycle(broker, dry_run=True, idle_s=2)
    assert (dry.read, dry.matched, dry.recycled, dry.duplicates) == (12, 2, 1, 1)
    first = recycle(broker, idle_s=2)
    assert first.recycled == 1
    again = consume_all(broker, topics.RAW, 19)
    assert len(again) == 19
    recycled = [m for m in again if m.value == cdr["raw"]]
    assert len(recycled) >= 2                            # the original single message and the recycled copy
    out = Normalizer(8, SOURCES).run([recycled[-1]], NOW)
    (c2,) = [c for v in out.by_partition.values() for c in v]
    assert c2["cdr_key"] == cdr["cdr_key"]               # the charge stage's key dedup sees a repeat
