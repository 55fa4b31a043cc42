"""What the durable broker costs: publish then consume N records on tansu in memory and on disk.

    flock /tmp/heavy.lock .venv/bin/python -m tests.support.broker_probe memory 20000
    flock /tmp/heavy.lock .venv/bin/python -m tests.support.broker_probe disk 20000

Bounded: N records, each phase at most 120 s. Starts its own broker in a temp dir and stops it."""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer

from streams import topics
from streams.local.broker import create_topics, start_tansu


def probe(mode: str, n: int) -> str:
    d = Path(tempfile.mkdtemp(prefix="cdrflow-broker-probe-"))
    child, bootstrap = start_tansu(d / "logs", data_dir=(d / "broker") if mode == "disk" else None)
    try:
        conf = {"bootstrap.servers": bootstrap}
        create_topics(conf, 8, 4)
        producer = Producer({**conf, "linger.ms": 20})
        t0 = time.monotonic()
        for i in range(n):
            producer.produce(topics.RAW, value=b"x" * 300, key=str(i).encode())
            if i % 1000 == 0:
                producer.poll(0)
        left = producer.flush(120)
        t1 = time.monotonic()
        consumer = Consumer({**conf, "group.id": "probe", "auto.offset.reset": "earliest"})
        consumer.subscribe([topics.RAW])
        got, first, deadline = 0, None, time.monotonic() + 120
        while got < n and time.monotonic() < deadline:
            for m in consumer.consume(500, 1.0):
                if not m.error():
                    got += 1
                    first = first or time.monotonic()
        t2 = time.monotonic()
        consumer.close()
        first = first or t2
        return (f"{mode}: published {n - left}/{n} at {n / (t1 - t0):,.0f}/s; consumed {got}/{n} at "
                f"{got / max(t2 - first, 1e-6):,.0f}/s after a {first - t1:.1f} s group join")
    finally:
        child.stop()


if __name__ == "__main__":
    print(probe(sys.argv[1], int(sys.argv[2])))
