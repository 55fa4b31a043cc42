"""streams/direct_send.py against a real broker: records are stored where Faust would put them.

State snapshots are sent by key (the producer's murmur2 partitioner) and must land in the
partition every other client routes the account to (streams/partitioning.py ``partition_for``),
or a compacted topic would keep two "latest" snapshots of an account; changelog records go to
the partition given. ``flush`` returns once the broker has them."""
from __future__ import annotations

import asyncio
import time

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams import topics
from streams.direct_send import DirectProducer
from streams.partitioning import partition_for
from tests.support.broker import broker  # noqa: F401 - module-scoped fixture

pytestmark = pytest.mark.integration


def _read(conf: dict, topic: str, n: int, parts: int = 8) -> list[tuple[int, bytes, bytes]]:
    c = Consumer({**conf, "group.id": f"direct-{time.time_ns()}", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, p, 0) for p in range(parts)])
    out, deadline = [], time.monotonic() + 30
    while len(out) < n and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is not None and not m.error():
            out.append((m.partition(), m.key(), m.value()))
    c.close()
    return out


def test_snapshots_by_key_land_where_partition_for_routes_and_changelog_records_where_told(broker):  # noqa: F811
    p = DirectProducer(broker, 1 << 20)
    try:
        accounts = [f"ACC{i:05d}" for i in range(60)]
        for a in accounts:
            p.send(topics.STATE, None, a.encode(), b"snap-" + a.encode())
        changelog = "cdrflow-accounts-changelog"
        p.send(changelog, 5, b"A1", b"v1")
        p.send(changelog, 5, b"A1", None)                    # a tombstone
        asyncio.run(p.flush(timeout_s=30))
        assert p.acked == p.produced == 62 and p.error is None
    finally:
        p._stop.set()
    got = _read(broker, topics.STATE, len(accounts))
    assert sorted(k.decode() for _p, k, _v in got) == accounts
    assert all(part == partition_for(k.decode(), 8) for part, k, _v in got)
    assert _read(broker, changelog, 2) == [(5, b"A1", b"v1"), (5, b"A1", None)]
