"""Read a whole topic once: from the start of every partition until each has reported its end.

Commands that need a topic's full contents (``cdrflow account list``, ``cdrflow recycle``) read
it this way. A partition counts as done when the consumer reports its end; the read also ends
when nothing arrives for ``idle_s``. Running out of ``max_s`` first raises ``ScanTimeout``.
A short read must never look like the whole topic.
"""
from __future__ import annotations

import time
from typing import Iterator


class TopicMissing(LookupError):
    """The topic does not exist (or reported an error) on the cluster."""


class ScanTimeout(TimeoutError):
    def __init__(self, topic: str, read: int, max_s: float):
        super().__init__(f"{topic} still not read to its end after {max_s:g} s ({read} records so far)")
        self.read = read


def values_to_end(client_conf: dict, topic: str, group: str, *, idle_s: float, max_s: float) -> Iterator[bytes]:
    """Yield every value of ``topic`` (tombstones as None), partition by partition in offset
    order, interleaved as the consumer delivers them."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    consumer = Consumer({**client_conf, "group.id": group, "enable.auto.commit": False,
                         "enable.partition.eof": True, "auto.offset.reset": "earliest"})
    try:
        md = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if md is None or md.error is not None or not md.partitions:
            raise TopicMissing(topic)
        parts = sorted(md.partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
        at_eof: set[int] = set()
        read = 0
        start = last = time.monotonic()
        while len(at_eof) < len(parts) and time.monotonic() - last < idle_s:
            if time.monotonic() - start >= max_s:
                raise ScanTimeout(topic, read, max_s)
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    at_eof.add(msg.partition())
                continue
            last = time.monotonic()
            at_eof.discard(msg.partition())
            read += 1
            yield msg.value()
    finally:
        consumer.close()
