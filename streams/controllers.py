"""Reference call controller: the barring decision per account, kept from Kafka.

Switch integrations can copy this. It

1. bootstraps from ``account.state`` (compacted, key = account; the latest record per account
   is its current profile, max price per minute and always-allowed destinations),
2. follows ``account.barring`` (one record per profile transition, key = account),
3. ignores replays: events are delivered at least once, and every event of an account carries a
   strictly increasing ``seq``; an event whose seq is at or below the last one seen for the
   account (from an event or from a state snapshot) is already reflected and changes nothing
   (the *decision*; which transitions are shown, once each and in seq order, is decided by
   streams/core/transitions.py, where a snapshot never hides an event),
4. answers :meth:`Controller.decide` before each call.

Decision rules (``decide``):

* an emergency number of the caller's numbering context, and a number matching one of the
  account's always-allowed entries, is allowed in every profile. Entries read as dialled in that
  context (``streams.core.authorize.always_allowed``): a code (``112``, ``1233``) matches only
  that code dialled as such, a range (``+31800``, ``0800`` in NL) matches E.164 numbers in it, so
  ``911`` never opens +91 1… (India);
* ``blocked`` allows nothing else;
* ``normal`` / ``low_credit`` allow a call whose price per minute is at most the profile's
  maximum;
* an account the controller knows nothing about gets only emergency numbers (fail closed:
  an unprovisioned account cannot be billed).

The consumer uses ``assign()`` (no consumer-group join, which is slow on tansu and pointless
for a reader that wants every partition's full history) and stops on SIGINT/SIGTERM or after
``max_seconds``.
"""
from __future__ import annotations

import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Iterable

from streams import codecs, topics
from streams.core import profiles as P
from streams.core.authorize import always_allowed
from streams.core.numbering import lookup
from streams.core.sources import DEFAULT_CONTEXT, NumberingContext

ALLOWED_PREFIX = "always_allowed"
WITHIN_MAX_RATE = "within_max_rate"
RATE_ABOVE_MAX = "rate_above_max"
BLOCKED = "blocked"
UNKNOWN_ACCOUNT = "unknown_account"


@dataclass(slots=True)
class Decision:
    """What a call controller needs to know about one account."""
    account: str
    profile: str
    max_rate_micros_per_min: int
    allowed_destinations: list[str]
    seq: int
    period: str = ""
    source: str = "state"          # state | barring
    at_ms: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(slots=True)
class Transition:
    """One barring event as the watcher saw it."""
    account: str
    seq: int
    old_profile: str
    new_profile: str
    reason: str
    period: str
    spend_micros: int
    credit_micros: int
    max_rate_micros_per_min: int
    allowed_destinations: list[str]
    at_ms: int
    applied: bool                  # False: a replay (seq at or below the last one seen)
    correction: bool = False
    event_id: str = ""
    cause_cdr_key: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def _read(dialled: str, ctx: NumberingContext) -> tuple[str, str]:
    """The dialled number as the normaliser reads it in ``ctx``; text it cannot read keeps its
    spelling, typed unknown (it can still fall in an always-allowed '+' range)."""
    got = lookup(dialled, ctx) if isinstance(dialled, str) else "not a string"
    if type(got) is tuple:
        return got
    return str(dialled).strip(), "unknown"


@dataclass
class Controller:
    decisions: dict[str, Decision] = field(default_factory=dict)
    replays: int = 0

    def seq(self, account: str) -> int:
        d = self.decisions.get(account)
        return d.seq if d else -1

    def bootstrap(self, state: dict) -> bool:
        """Apply one ``account.state`` record; the newest seq wins (an equal seq refreshes it,
        since spend changes do not bump seq). Returns True when it was taken."""
        acct = state["account"]
        if state["seq"] < self.seq(acct):
            return False
        self.decisions[acct] = Decision(acct, state["profile"], state["max_rate_micros_per_min"],
                                        list(state["allowed_destinations"]), state["seq"], state.get("period", ""),
                                        "state", state.get("updated_ms", 0))
        return True

    def apply_event(self, ev: dict) -> Transition:
        """Apply one ``account.barring`` event unless it is a replay. A correction of a past
        period (streams.core.transitions.is_current) advances the seq but keeps the decision."""
        from streams.core.transitions import is_current

        acct = ev["account"]
        applied = ev["seq"] > self.seq(acct)
        current = self.decisions.get(acct)
        if applied and not is_current(ev, current.period if current else None):
            if current is not None:
                current.seq = ev["seq"]
            applied = False
        elif applied:
            self.decisions[acct] = Decision(acct, ev["new_profile"], ev["max_rate_micros_per_min"],
                                            list(ev["allowed_destinations"]), ev["seq"], ev["period"],
                                            "barring", ev["at_ms"])
        else:
            self.replays += 1
        return Transition(acct, ev["seq"], ev["old_profile"], ev["new_profile"], ev["reason"], ev["period"],
                          ev["spend_micros"], ev["credit_micros"], ev["max_rate_micros_per_min"],
                          list(ev["allowed_destinations"]), ev["at_ms"], applied,
                          bool(ev.get("correction")), ev.get("event_id", ""), ev.get("cause_cdr_key"))

    def decide(self, account: str, destination: str, rate_micros_per_min: int,
               ctx: NumberingContext = DEFAULT_CONTEXT) -> tuple[bool, str]:
        """May ``account`` call ``destination`` (as dialled in ``ctx``, or E.164 with '+') at this price?"""
        number, kind = _read(destination, ctx)
        d = self.decisions.get(account)
        if always_allowed(number, kind, d.allowed_destinations if d else (), ctx) is not None:
            return True, ALLOWED_PREFIX
        if d is None:
            return False, UNKNOWN_ACCOUNT
        if d.profile == P.BLOCKED or d.max_rate_micros_per_min < 0:
            return False, BLOCKED
        if rate_micros_per_min <= d.max_rate_micros_per_min:
            return True, WITHIN_MAX_RATE
        return False, RATE_ABOVE_MAX


# --- Kafka ----------------------------------------------------------------------------------

class Stopper:
    """Stops a loop on SIGINT/SIGTERM (main thread only) or after ``max_seconds``."""

    def __init__(self, max_seconds: float | None = None, install_signals: bool = True):
        self.deadline = None if max_seconds is None else time.monotonic() + max_seconds
        self.flag = threading.Event()
        self._old: dict = {}
        if install_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, lambda *_: self.flag.set())

    def stopped(self) -> bool:
        return self.flag.is_set() or (self.deadline is not None and time.monotonic() >= self.deadline)

    def restore(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old.clear()


def _partitions(consumer, topic: str, accounts: Iterable[str] | None) -> list[int]:
    from streams.partitioning import partition_for

    md = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if md is None or md.error is not None or not md.partitions:
        raise RuntimeError(f"topic {topic} does not exist (is the stack up? `cdrflow stack up` creates it)")
    parts = sorted(md.partitions)
    if accounts:
        return sorted({partition_for(a, len(parts)) for a in accounts})
    return parts


def _now_ms() -> int:
    return int(time.monotonic() * 1000)


class Watcher:
    """Bootstrap from account.state, then follow account.barring, feeding a Controller.

    ``on_transition(t)`` is called once per barring transition, in seq order per account
    (streams/core/transitions.py; ``t.applied`` False when it did not change the decision:
    a correction of a past period, or an event the state snapshot already reflected);
    ``on_bootstrapped(controller)`` once the state topic has been read to its end.
    """

    def __init__(self, client_conf: dict, controller: Controller | None = None,
                 accounts: Iterable[str] | None = None, from_beginning: bool = False,
                 bootstrap_idle_s: float = 2.0, bootstrap_max_s: float = 60.0):
        self.conf = client_conf
        self.controller = controller or Controller()
        self.accounts = set(accounts or ())
        self.from_beginning = from_beginning
        self.bootstrap_idle_s = bootstrap_idle_s
        self.bootstrap_max_s = bootstrap_max_s
        self.bootstrapped = False
        self.state_records = 0
        self.events = 0
        self.undecodable = 0
        # Arrival order of the two topics must not decide which transitions are shown.
        from streams.core.transitions import Sequencer
        self.sequencer = Sequencer(from_beginning=from_beginning)

    def _wanted(self, account: str) -> bool:
        return not self.accounts or account in self.accounts

    def record(self, topic: str, rec: dict, now_ms: int, on_transition: Callable[[Transition], None]) -> None:
        """One decoded record of either topic (the Kafka-free half of :meth:`run`)."""
        if not self._wanted(rec["account"]):
            return
        if topic == topics.STATE:
            self.state_records += 1
            self.controller.bootstrap(rec)
            self.sequencer.state(rec)
        else:
            self.events += 1
            self.release(self.sequencer.event(rec, now_ms), on_transition)

    def release(self, events: list[dict], on_transition: Callable[[Transition], None]) -> None:
        for ev in events:
            on_transition(self.controller.apply_event(ev))

    def run(self, stopper: Stopper, on_transition: Callable[[Transition], None] = lambda t: None,
            on_bootstrapped: Callable[[Controller], None] = lambda c: None) -> Controller:
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, TopicPartition

        consumer = Consumer({**self.conf, "group.id": "cdrflow-barring-watch", "enable.auto.commit": False,
                             "enable.partition.eof": True, "auto.offset.reset": "earliest"})
        try:
            state_parts = _partitions(consumer, topics.STATE, self.accounts)
            barring_parts = _partitions(consumer, topics.BARRING, self.accounts)
            start = OFFSET_BEGINNING if self.from_beginning else OFFSET_END
            # Both at once: the barring end offsets are fixed before the state is read, so no
            # transition between the snapshot and the follow can fall through the gap (and any
            # overlap is a replay the seq check drops).
            consumer.assign([TopicPartition(topics.STATE, p, OFFSET_BEGINNING) for p in state_parts]
                            + [TopicPartition(topics.BARRING, p, start) for p in barring_parts])
            at_eof: set[int] = set()
            last_state = time.monotonic()
            boot_deadline = last_state + self.bootstrap_max_s
            while not stopper.stopped():
                if not self.bootstrapped and (len(at_eof) == len(state_parts)
                                              or time.monotonic() - last_state >= self.bootstrap_idle_s
                                              or time.monotonic() >= boot_deadline):
                    # tansu's high watermark is unreliable, so EOF is helped by an idle window.
                    self.bootstrapped = True
                    on_bootstrapped(self.controller)
                    self.release(self.sequencer.start(_now_ms()), on_transition)
                self.release(self.sequencer.expire(_now_ms()), on_transition)
                msg = consumer.poll(0.2)
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF and msg.topic() == topics.STATE:
                        at_eof.add(msg.partition())
                    continue
                try:
                    _, rec = codecs.decode(msg.value())
                except Exception:
                    self.undecodable += 1
                    continue
                if msg.topic() == topics.STATE:
                    last_state = time.monotonic()
                    at_eof.discard(msg.partition())
                self.record(msg.topic(), rec, _now_ms(), on_transition)
        finally:
            consumer.close()
        if not self.bootstrapped:
            self.bootstrapped = True
            on_bootstrapped(self.controller)
            self.release(self.sequencer.start(_now_ms()), on_transition)
        # Stopping: events still held for a missing seq are shown rather than lost.
        self.release(self.sequencer.expire(_now_ms() + self.sequencer.gap_wait_ms), on_transition)
        return self.controller
