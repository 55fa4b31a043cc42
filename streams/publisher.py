"""Publishing CDRs and control commands to Kafka with confluent-kafka.

Single mode sends one Confluent-framed record per message; batch mode sends Avro object
containers (a CDR file per message), which is how switches usually deliver.
"""
from __future__ import annotations

import time
from typing import Iterable

from confluent_kafka import KafkaException, Producer

from streams import codecs, topics
from streams.partitioning import producer_config


class Publisher:
    def __init__(self, client_conf: dict):
        self.producer = Producer(producer_config(client_conf))
        self.errors: list[str] = []
        self.sent = 0

    def _cb(self, err, _msg):
        if err is not None:
            self.errors.append(str(err))

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> None:
        """Produce one message; waits for room when the local queue is full."""
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, on_delivery=self._cb)
                self.sent += 1
                if self.sent % 1000 == 0:
                    self.producer.poll(0)
                return
            except BufferError:
                # The local queue is full: let delivery reports drain it, then retry.
                self.producer.poll(0.05)
            except KafkaException as exc:  # pragma: no cover - broker-side
                raise RuntimeError(f"cannot publish to {topic}: {exc}") from exc


    def cdrs(self, records: list[dict], mode: str = "batch", batch_size: int = 500) -> int:
        """Publish switch CDRs; returns the number of Kafka messages."""
        n = 0
        if mode == "single":
            for rec in records:
                self.send(topics.RAW, codecs.encode(codecs.SWITCH_CDR, rec), rec["account"].encode())
                n += 1
                if n % 1000 == 0:
                    self.producer.poll(0)
        elif mode == "batch":
            for i in range(0, len(records), batch_size):
                self.send(topics.RAW, codecs.encode_container(codecs.SWITCH_CDR, records[i:i + batch_size]))
                n += 1
                self.producer.poll(0)
        else:
            raise ValueError(f"mode must be single or batch, not {mode!r}")
        return n

    def raw(self, values: Iterable[bytes], topic: str = topics.RAW) -> int:
        n = 0
        for v in values:
            self.send(topic, v)
            n += 1
        return n

    def commands(self, cmds: Iterable[dict]) -> int:
        n = 0
        for cmd in cmds:
            self.send(topics.CONTROL, codecs.encode(codecs.CONTROL, cmd), cmd["account"].encode())
            n += 1
        return n

    def close(self, timeout_s: float = 10) -> None:
        """Deliver what is queued and drop the client, so it does not outlive the broker (and
        log connection errors) when a local stack stops."""
        if self.producer is not None:
            self.producer.flush(timeout_s)
            self.producer = None

    def flush(self, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while self.producer.flush(1) > 0:
            if time.monotonic() > deadline:
                raise TimeoutError("Kafka did not acknowledge all messages in time; is the broker up?")
        if self.errors:
            raise RuntimeError(f"{len(self.errors)} messages were not delivered, first: {self.errors[0]}")
