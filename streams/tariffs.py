"""The tariff book in force in this worker process: the configured file, plus live updates.

Live updates come from the topic ``tariff.plans`` (:data:`streams.topics.TARIFFS`).

Message format (what ``cdrflow tariffs load`` publishes)
    * key: the plan name (UTF-8).
    * value: a JSON envelope ``{"format": "yaml" | "csv", "text": <the whole tariff file>,
      "source": <file name>, "loaded_ms": <epoch ms when published>}``. The file may hold
      several plans; a message installs only the plan named by its key (so a file with plans
      A and B is published as two messages, and each plan keeps its own latest value on a
      compacted topic).
    * value null (a tombstone): drop the topic's version of that plan; the file's plan (if
      any) is in force again.

Every worker sees every plan: the watcher assigns all partitions of the topic from the
beginning, with no group membership and no commits, so a restarted worker replays the latest
plans. On each message the whole book (the file's plans, overridden by each plan's latest
valid topic text) is rebuilt and validated; an invalid message is logged with its row and
problem and the previous book stays in force (the last error shows in :func:`tariff_status`).
"""
from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from typing import Any

from streams import topics
from streams.core.tariff import TariffBook, TariffError, load_tariff_book, parse_tariff_text
from streams.settings import get_settings

log = logging.getLogger("cdrflow.tariffs")
_lock = threading.Lock()
_book: TariffBook | None = None
_file_book: TariffBook | None = None
_watcher: "TariffWatcher | None" = None
FORMATS = ("yaml", "csv")


def _load_file_book() -> TariffBook:
    global _file_book
    if _file_book is None:
        path = get_settings().tariff_file
        _file_book = load_tariff_book(path)
        log.info("tariff loaded file=%s", path)
    return _file_book


def current_book() -> TariffBook:
    global _book
    if _book is None:
        with _lock:
            if _book is None:
                _book = _load_file_book()
    return _book


def replace_book(book: TariffBook) -> None:
    """Swap in a validated book; rating picks it up on the next CDR (no restart)."""
    global _book
    _book = book


def reset_for_tests() -> None:
    global _book, _file_book
    stop_watcher()
    _book = _file_book = None


# -- the message format --------------------------------------------------------------------
def encode_plan_message(text: str, fmt: str, source: str, loaded_ms: int | None = None) -> bytes:
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} must be one of {FORMATS}")
    return json.dumps({"format": fmt, "text": text, "source": source,
                       "loaded_ms": int(time.time() * 1000) if loaded_ms is None else loaded_ms}).encode()


def decode_plan_message(plan: str, value: bytes) -> tuple[dict, TariffBook]:
    """(envelope, book parsed from its text) or TariffError naming source, row and problem."""
    try:
        env = json.loads(value)
    except (ValueError, UnicodeDecodeError) as e:
        raise TariffError(f"topic:{plan}", None, f"message value is not a JSON envelope: {e}") from None
    if not isinstance(env, dict) or env.get("format") not in FORMATS or not isinstance(env.get("text"), str):
        raise TariffError(f"topic:{plan}", None, 'envelope must be {"format": "yaml"|"csv", "text": ..., "source": ...}')
    source = str(env.get("source") or f"topic:{plan}")
    book = parse_tariff_text(env["text"], source, env["format"])
    if plan not in book.plans:
        raise TariffError(source, None, f"message key is plan {plan!r} but the file defines {list(book.plans)}")
    return env, book


def plan_versions(book: TariffBook, now_ms: int | None = None) -> dict[str, dict]:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    out = {}
    for p in book.plans:
        try:
            in_force = book.version_at(p, now_ms).version
        except Exception:   # a plan whose first version is in the future has none in force yet
            in_force = None
        out[p] = {"in_force": in_force, "versions": list(book.versions(p))}
    return out


class TariffWatcher:
    """Daemon thread applying ``tariff.plans`` messages to the process-wide book."""

    def __init__(self, client_conf: dict, topic: str = topics.TARIFFS, base: TariffBook | None = None,
                 poll_s: float = 0.5, install=None):
        self.conf = dict(client_conf)
        self.install = install or replace_book   # where a validated book goes (the CLI collects it)
        self.topic = topic
        self.base = base
        self.poll_s = poll_s
        self.overrides: dict[str, tuple[dict, TariffBook]] = {}   # plan -> (envelope, parsed book)
        self.last_error: dict | None = None
        self.applied = 0
        self.rejected = 0
        self.last_offset: dict[int, int] = {}
        self._stop = threading.Event()
        self._assigned = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tariff-watcher", daemon=True)
        self._slock = threading.Lock()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "TariffWatcher":
        if self.base is None:
            self.base = _load_file_book()
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def wait_assigned(self, timeout: float) -> bool:
        return self._assigned.wait(timeout)

    # -- the loop ----------------------------------------------------------------------------
    def _consumer(self):
        from confluent_kafka import Consumer

        conf = dict(self.conf)
        # group.id is required by librdkafka, but with assign() there is no group membership;
        # a unique id and no commits mean no worker's position affects another's.
        conf.update({"group.id": f"cdrflow-tariffs-{uuid.uuid4().hex[:12]}", "enable.auto.commit": False,
                     "enable.auto.offset.store": False, "auto.offset.reset": "earliest"})
        return Consumer(conf)

    def _assign(self, consumer) -> bool:
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition

        md = consumer.list_topics(self.topic, timeout=5)
        t = md.topics.get(self.topic)
        if t is None or t.error is not None or not t.partitions:
            return False
        consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in sorted(t.partitions)])
        log.info("tariff watcher assigned topic=%s partitions=%d", self.topic, len(t.partitions))
        self._assigned.set()
        return True

    def _run(self) -> None:
        consumer = None
        try:
            consumer = self._consumer()
            while not self._stop.is_set():
                if not self._assigned.is_set():
                    try:
                        if not self._assign(consumer):
                            self._stop.wait(1.0)   # topic not created yet: look again shortly
                            continue
                    except Exception as exc:       # broker not reachable yet
                        log.warning("tariff watcher: cannot read metadata: %s", exc)
                        self._stop.wait(1.0)
                        continue
                msg = consumer.poll(self.poll_s)
                if msg is None:
                    continue
                if msg.error():
                    log.warning("tariff watcher: %s", msg.error())
                    continue
                self.handle(msg.key(), msg.value(), msg.partition(), msg.offset())
        except Exception:  # pragma: no cover - keep the worker alive; the book in force stays
            log.exception("tariff watcher stopped on an unexpected error")
        finally:
            if consumer is not None:
                try:
                    consumer.close()
                except Exception:  # pragma: no cover
                    pass

    def handle(self, key: bytes | None, value: bytes | None, partition: int = 0, offset: int = -1) -> bool:
        """Apply one message; True when the book was replaced. Never raises on bad content."""
        plan = key.decode("utf-8", "replace") if key else ""
        with self._slock:
            self.last_offset[partition] = offset
            if not plan:
                self._reject(plan, offset, TariffError(f"topic:{self.topic}", None, "message has no key (plan name)"))
                return False
            overrides = dict(self.overrides)
            if value is None:
                overrides.pop(plan, None)
                env = None
            else:
                try:
                    env, parsed = decode_plan_message(plan, value)
                except TariffError as e:
                    self._reject(plan, offset, e)
                    return False
                overrides[plan] = (env, parsed)
            book = self._compose(overrides)
            self.overrides = overrides
            self.install(book)
            self.applied += 1
            log.info("tariff plan=%s %s source=%s offset=%d versions=%s", plan,
                     "removed" if env is None else "installed", env and env.get("source"), offset,
                     book.versions(plan) if plan in book.plans else ())
            return True

    def _compose(self, overrides: dict[str, tuple[dict, TariffBook]]) -> TariffBook:
        assert self.base is not None
        plans = {}
        base_plans = {p: self.base.plan(p) for p in self.base.plans}
        for p, (_, parsed) in overrides.items():
            plans[p] = parsed.plan(p)
            # A plan priced as another plan's commission must come along from its own file.
            for v in plans[p].versions:
                for partner in v.extras.commission:
                    if partner.plan and partner.plan not in overrides and partner.plan not in base_plans:
                        plans[partner.plan] = parsed.plan(partner.plan)
        return TariffBook({**base_plans, **plans}, source=f"{self.base.source}+topic:{self.topic}")

    def _reject(self, plan: str, offset: int, e: TariffError) -> None:
        self.rejected += 1
        self.last_error = {"plan": plan, "offset": offset, "path": e.path, "row": e.row, "where": e.where,
                           "problem": e.problem, "message": str(e), "at_ms": int(time.time() * 1000)}
        log.error("tariff update refused, previous book stays in force: plan=%s offset=%d: %s", plan, offset, e)

    def status(self) -> dict[str, Any]:
        with self._slock:
            return {"running": self.running, "topic": self.topic, "assigned": self._assigned.is_set(),
                    "applied": self.applied, "rejected": self.rejected, "last_error": self.last_error,
                    "offsets": dict(self.last_offset),
                    "topic_plans": {p: {"source": env.get("source"), "loaded_ms": env.get("loaded_ms")}
                                    for p, (env, _) in self.overrides.items()}}


def start_watcher(client_conf: dict, topic: str = topics.TARIFFS) -> TariffWatcher:
    """Start (once per process) the live-update thread; returns at once. Stop with stop_watcher()."""
    global _watcher
    with _lock:
        if _watcher is not None and _watcher.running:
            return _watcher
        _watcher = TariffWatcher(client_conf, topic).start()
        return _watcher


def stop_watcher(timeout: float = 10.0) -> None:
    global _watcher
    w, _watcher = _watcher, None
    if w is not None:
        w.stop(timeout)


def tariff_status() -> dict[str, Any]:
    """Versions in force per plan, where each plan came from, and the last refused update."""
    book = current_book()
    w = _watcher
    ws = w.status() if w is not None else {"running": False, "last_error": None, "topic_plans": {}}
    plans = plan_versions(book)
    for p, info in plans.items():
        tp = ws.get("topic_plans", {}).get(p)
        info["source"] = f"topic:{tp['source']}" if tp else "file"
    return {"source": book.source, "plans": plans, "last_error": ws.get("last_error"), "watcher": ws}
