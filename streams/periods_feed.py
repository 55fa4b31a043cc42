"""Closed financial periods as the workers follow them: topic ``financial.periods``.

``cdrflow periods close|reopen`` records a decision in ClickHouse (for accountants and rerating)
and publishes it here, so that the charge stage books a late CDR of a closed period in the open
period instead of editing the closed one (streams.core.credit.late_closed_event).

Message: key ``<account>|<period>`` (account ``*`` = every account), value JSON
``{"account", "period", "status": open|closed|partial, "closed_until_ms", "version"}``; the topic is
compacted, so the latest decision per key survives. Every worker reads every partition from the
beginning (assign, no group, no commits), like ``tariff.plans``.
"""
from __future__ import annotations

import json
import logging
import threading
import uuid

from streams import topics
from streams.core.periods import ClosedPeriods
from streams.metrics import count

log = logging.getLogger("cdrflow.periods")
_closed = ClosedPeriods()
_watcher: "PeriodWatcher | None" = None


def current_closed() -> ClosedPeriods:
    return _closed


def encode(decision: dict) -> tuple[bytes, bytes]:
    d = {k: decision[k] for k in ("account", "period", "status", "closed_until_ms", "version")}
    return f"{d['account']}|{d['period']}".encode(), json.dumps(d, sort_keys=True).encode()


def publish(client_conf: dict, decision: dict, timeout_s: float = 15.0) -> None:
    """Send one decision; raises RuntimeError when the broker does not take it in time."""
    from confluent_kafka import Producer

    key, value = encode(decision)
    errors: list = []
    p = Producer({**client_conf, "enable.idempotence": True})
    p.produce(topics.PERIODS, key=key, value=value, on_delivery=lambda err, _m: err and errors.append(err))
    if p.flush(timeout_s) or errors:
        raise RuntimeError(f"could not publish to {topics.PERIODS}: {errors[0] if errors else 'timed out'}")


class PeriodWatcher:
    """Daemon thread applying ``financial.periods`` to a ClosedPeriods registry."""

    def __init__(self, client_conf: dict, closed: ClosedPeriods | None = None, poll_s: float = 0.5):
        self.conf = dict(client_conf)
        self.closed = closed if closed is not None else _closed
        self.poll_s = poll_s
        self.applied = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="period-watcher", daemon=True)

    def start(self) -> "PeriodWatcher":
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def handle(self, value: bytes | None) -> bool:
        """One message; a bad one is logged and skipped (never raises)."""
        if not value:
            return False
        try:
            self.closed.apply(json.loads(value))
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("event=period_decision_refused error=%s", exc)
            return False
        self.applied += 1
        count("period_decisions")
        return True

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        consumer = Consumer({**self.conf, "group.id": f"cdrflow-periods-{uuid.uuid4().hex[:12]}",
                             "enable.auto.commit": False, "auto.offset.reset": "earliest"})
        assigned = False
        try:
            while not self._stop.is_set():
                if not assigned:
                    try:
                        t = consumer.list_topics(topics.PERIODS, timeout=5).topics.get(topics.PERIODS)
                    except Exception as exc:          # broker not reachable yet
                        log.warning("period watcher: cannot read metadata: %s", exc)
                        t = None
                    if t is None or t.error is not None or not t.partitions:
                        self._stop.wait(1.0)
                        continue
                    consumer.assign([TopicPartition(topics.PERIODS, p, OFFSET_BEGINNING) for p in t.partitions])
                    assigned = True
                msg = consumer.poll(self.poll_s)
                if msg is None or msg.error():
                    continue
                self.handle(msg.value())
        except Exception:  # pragma: no cover - keep the worker alive with the decisions it has
            log.exception("period watcher stopped on an unexpected error")
        finally:
            consumer.close()


def start_watcher(client_conf: dict) -> PeriodWatcher:
    global _watcher
    if _watcher is None:
        _watcher = PeriodWatcher(client_conf).start()
    return _watcher
