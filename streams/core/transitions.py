"""Barring transitions in order, exactly once, whatever the arrival order (pure).

A call controller reads two topics: ``account.state`` (latest snapshot per account) and
``account.barring`` (one event per transition, at-least-once). The two are separate topics, so
a snapshot with seq N can arrive before the event with seq N. Judging events against the
snapshot's seq (as ``cdrflow barring watch`` once did) treats that event as a replay and drops
the transition. The rules here never let a snapshot suppress an event:

* every event read from ``account.barring`` is delivered once per (account, seq); a repeat is
  counted as a duplicate and dropped;
* per account, events are delivered in seq order: an event above the next expected seq is held
  until the missing ones arrive, or until it has been held ``gap_wait_ms`` (then the held events
  are delivered in order and the missing seqs counted in ``gaps``); an event below the last
  delivered seq that was never delivered arrives too late to keep the order: counted ``stale``;
* the next expected seq of an account starts at the seq of its snapshot read while bootstrapping
  + 1 (or at 1 when following from the beginning), but an event at or below it is still
  delivered: it was read from the barring topic after the watch started, so the controller has
  not seen it as a transition.

Snapshots only inform the *decision* (streams/controllers.py); an event marked ``correction``
(a late CDR or rerate crossing a limit of a past period) is delivered as a transition but must
not replace the current decision (:func:`is_current`).
"""
from __future__ import annotations

from dataclasses import dataclass, field


def is_current(event: dict, current_period: str | None) -> bool:
    """True when ``event`` describes the account's current profile (not a past period's)."""
    if event.get("correction"):
        return False
    return not current_period or event["period"] >= current_period


@dataclass
class _Account:
    base: int = 0                       # snapshot seq at bootstrap: seqs up to it may be missing
    last: int | None = None             # last delivered seq
    delivered: set[int] = field(default_factory=set)
    held: dict[int, tuple[dict, int]] = field(default_factory=dict)    # seq -> (event, held since)


@dataclass
class Sequencer:
    from_beginning: bool = False
    gap_wait_ms: int = 2_000
    started: bool = False
    duplicates: int = 0
    gaps: int = 0
    stale: int = 0
    accounts: dict[str, _Account] = field(default_factory=dict)

    def _acct(self, account: str) -> _Account:
        a = self.accounts.get(account)
        if a is None:
            a = self.accounts[account] = _Account()
        return a

    def state(self, snapshot: dict) -> None:
        """A snapshot read from account.state. Only snapshots read before :meth:`start` set the
        baseline; later ones never affect which events are delivered."""
        if self.started or self.from_beginning:
            return
        a = self._acct(snapshot["account"])
        if a.last is None:
            a.base = max(a.base, int(snapshot["seq"]))

    def start(self, now_ms: int) -> list[dict]:
        """Bootstrapping is over: events read meanwhile are released (in order)."""
        self.started = True
        out: list[dict] = []
        for name in sorted(self.accounts):
            out += self._drain(self.accounts[name])
        return out

    def event(self, ev: dict, now_ms: int) -> list[dict]:
        """Offer one barring event; returns the events deliverable now, in seq order."""
        a = self._acct(ev["account"])
        seq = int(ev["seq"])
        if seq in a.delivered or seq in a.held:
            self.duplicates += 1
            return []
        if a.last is not None and seq < a.last:
            self.stale += 1
            return []
        a.held[seq] = (ev, now_ms)
        return self._drain(a) if self.started else []

    def expire(self, now_ms: int) -> list[dict]:
        """Give up waiting for missing seqs held longer than ``gap_wait_ms``."""
        if not self.started:
            return []
        out: list[dict] = []
        for name in sorted(self.accounts):
            a = self.accounts[name]
            if a.held and now_ms - min(t for _e, t in a.held.values()) >= self.gap_wait_ms:
                low = min(a.held)
                self.gaps += low - self._next(a)
                a.last = low - 1
                out += self._drain(a)
        return out

    def _next(self, a: _Account) -> int:
        return (a.last if a.last is not None else a.base) + 1

    def _drain(self, a: _Account) -> list[dict]:
        out: list[dict] = []
        while a.held:
            low = min(a.held)
            if a.last is None and low <= a.base + 1:
                pass                      # first event, at or below the baseline: deliver
            elif low != self._next(a):
                break
            ev, _t = a.held.pop(low)
            a.last = low
            a.delivered.add(low)
            out.append(ev)
        return out
