"""streams/topic_scan.py against a real tansu broker: a whole topic is read to its end, a missing
topic is said, and running out of time is an error (``account list`` and ``recycle`` read this way;
recycle used to stop silently at its limit and report a short read as the whole topic)."""
from __future__ import annotations

import pytest
from confluent_kafka import Producer

from streams import topics
from streams.topic_scan import ScanTimeout, TopicMissing, values_to_end
from tests.support.broker import broker  # noqa: F401 - module-scoped fixture


def test_reads_every_partition_to_its_end_then_stops(broker):  # noqa: F811
    p = Producer(broker)
    sent = [f"v{i}".encode() for i in range(40)]
    for i, v in enumerate(sent):
        p.produce(topics.REJECTED, value=v, partition=i % 8)
    assert p.flush(30) == 0
    got = list(values_to_end(broker, topics.REJECTED, "scan-test-1", idle_s=5, max_s=60))
    assert sorted(got) == sorted(sent)


def test_a_missing_topic_is_said(broker):  # noqa: F811
    with pytest.raises(TopicMissing):
        list(values_to_end(broker, "no.such.topic", "scan-test-2", idle_s=1, max_s=10))


def test_running_out_of_time_is_an_error_not_a_short_read(broker):  # noqa: F811
    with pytest.raises(ScanTimeout, match=r"cdr.rejected still not read to its end after 0 s \(0 records so far\)"):
        list(values_to_end(broker, topics.REJECTED, "scan-test-3", idle_s=5, max_s=0))
