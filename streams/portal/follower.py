"""Follows ``account.control`` and ``account.replies`` into the portal's Directory.

Time zones and service-user thresholds are not in account.state nor in ClickHouse: they exist
only in the control commands and in the worker's table. The follower reads both topics from the
beginning (assigned partitions, no consumer group: it commits nothing and never rebalances the
workers' groups) and hands each record to the Directory, which applies a command once its reply
says the worker applied it. So a threshold set with ``cdrflow account set-user-thresholds`` or a
time zone set with ``cdrflow account create`` shows in the portal, and a change made in the
portal shows as applied (or refused, with the reason) when the worker has answered.
"""
from __future__ import annotations

import logging
import threading
import time

from streams import codecs, topics

log = logging.getLogger(__name__)


class ControlFollower:
    def __init__(self, conf: dict, directory, poll_s: float = 0.2) -> None:
        self.conf = conf
        self.directory = directory
        self.poll_s = poll_s
        self.stopping = threading.Event()
        self.seen = 0           # records handed to the directory (for /healthz and tests)
        self._thread: threading.Thread | None = None

    def _consumer(self):
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        c = Consumer({**self.conf, "group.id": f"cdrflow-portal-follower-{time.time_ns()}",
                      "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        parts = []
        deadline = time.monotonic() + 60
        for name in (topics.CONTROL, topics.REPLIES):
            # The topics may not exist yet when the portal starts before the stack made them.
            while not self.stopping.is_set():
                md = c.list_topics(name, timeout=5).topics.get(name)
                if md is not None and md.error is None and md.partitions:
                    parts += [TopicPartition(name, p, OFFSET_BEGINNING) for p in md.partitions]
                    break
                if time.monotonic() > deadline:
                    log.warning("event=portal_follower_no_topic topic=%s", name)
                    break
                self.stopping.wait(1.0)
        c.assign(parts)
        return c

    def handle(self, name: str, rec: dict) -> None:
        if name == codecs.CONTROL:
            self.directory.on_command(rec)
        elif name == codecs.REPLY:
            self.directory.on_reply(rec)
        self.seen += 1

    def run(self) -> None:
        c = None
        try:
            c = self._consumer()
            while not self.stopping.is_set():
                m = c.poll(self.poll_s)
                if m is None or m.error() or m.value() is None:
                    continue
                try:
                    name, rec = codecs.decode(m.value())
                    self.handle(name, rec)
                except Exception as exc:  # noqa: BLE001 - one bad record must not stop the follower
                    log.warning("event=portal_follower_skip topic=%s partition=%d offset=%d error=%r",
                                m.topic(), m.partition(), m.offset(), exc)
        except Exception as exc:  # noqa: BLE001 - the portal keeps serving with what it knows
            log.error("event=portal_follower_failed error=%r", exc)
        finally:
            if c is not None:
                c.close()

    def start(self) -> "ControlFollower":
        self._thread = threading.Thread(target=self.run, name="portal-follower", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 10) -> None:
        self.stopping.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
