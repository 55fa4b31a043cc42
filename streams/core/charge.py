"""One batch of canonical CDRs and control commands applied to account states.

This is the whole billing step of the account agent as a pure function, so that the agent only
decodes, calls this, writes the touched states and sends the outputs. Replay rules:

* a CDR whose key the account has already applied is a duplicate: spend does not change. Keys
  are found in the copy's call day and the days next to it, so a re-send whose start moved
  across midnight UTC is still a duplicate (a shift of under 24 h always is);
* if it arrives again in the *same* input message (offset at or below the account's recorded
  offset), it is a redelivery after a crash: its rated record and the transitions it caused are
  emitted again with the same ids, because the first emission may have been lost with the
  crashed producer. Sinks collapse them by key.
* **the first applied copy of a key is the billed one.** A later copy with the same key but
  other content (a switch re-sent it with a changed billsec) is a duplicate; on a redelivery it
  is not re-emitted either, because the sink keeps the last row of a key: only a copy whose
  content digest equals the billed copy's is re-emitted (streams/core/dedup.py).

The applied keys live in their own store (``KeyIndex``), not in the account value, so a batch's
cost and writes do not grow with the account's history.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from typing import Callable

from streams.core import credit, replies, thresholds
from streams.core.dedup import UNKNOWN_DIGEST, KeyIndex, content_digest, decode_pending, encode_pending, key_id
from streams.core.keys import reject_id, legacy_key_of
from streams.core.periods import MONTHLY, period_bounds, period_of
from streams.core.reasons import Reason, RejectError
from streams.core import currency
from streams.core.tariff.cgr_engine import spans_text
from streams.core.tariff.extras import apply_coefficient, commission, extras_for, volume_tier

RECENT_EVENTS = 16
# Day buckets either side of a CDR's call day searched for its key (see ChargeBatch._applied_near).
ADJACENT_DAYS = 1
DAY_MS = 86_400_000


@dataclass(slots=True)
class BatchResult:
    rated: list[dict] = field(default_factory=list)
    rejects: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    notifications: list[dict] = field(default_factory=list)
    commissions: list[dict] = field(default_factory=list)
    touched: set[str] = field(default_factory=set)
    duplicates: int = 0
    redelivered: int = 0
    # Redelivered copies that differ from the billed copy of their key: no output (see module doc).
    redelivered_conflicts: int = 0
    # Key-store node writes (None: delete); the caller stores them with the account values.
    key_writes: dict = field(default_factory=dict)
    commands: int = 0
    command_errors: list[str] = field(default_factory=list)
    replies: list[dict] = field(default_factory=list)      # command outcomes (streams/core/replies.py)

    def absorb(self, other: "BatchResult") -> None:
        """Append the result of inputs applied after this one's (streams/charge_isolate.py)."""
        for name in ("rated", "rejects", "events", "notifications", "commissions", "command_errors", "replies"):
            getattr(self, name).extend(getattr(other, name))
        for name in ("duplicates", "redelivered", "redelivered_conflicts", "commands"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.touched |= other.touched
        self.key_writes.update(other.key_writes)


def _day(ms: int) -> str:
    return str(ms // DAY_MS)


def _ms(v) -> int:
    # fastavro returns timestamp-millis as aware datetimes; pure callers may pass ints.
    if isinstance(v, datetime):
        return int(v.timestamp() * 1000) if v.microsecond % 1000 else int(v.timestamp()) * 1000 + v.microsecond // 1000
    return int(v)


def oldest_day(now_ms: int, horizon_days: int) -> int:
    return now_ms // DAY_MS - horizon_days


def make_reject(reason: Reason, detail: str, stage: str, topic: str, partition: int, offset: int,
                index: int, raw: bytes, now_ms: int, cdr_key: str | None = None,
                account: str | None = None) -> dict:
    return {"reject_id": reject_id(stage, topic, partition, offset, index), "reason": reason.value,
            "detail": detail, "stage": stage, "source_topic": topic, "source_partition": partition,
            "source_offset": offset, "source_index": index, "raw": raw, "cdr_key": cdr_key,
            "account": account, "rejected_at_ms": now_ms}


def cdr_reject(cdr: dict, reason: Reason, detail: str, now_ms: int) -> dict:
    """A charge-stage reject of one canonical CDR: its original raw bytes and source position."""
    return make_reject(
        reason, detail, "charge", cdr.get("source_topic", ""), cdr.get("source_partition", -1),
        cdr.get("source_offset", -1), cdr.get("source_index", 0), cdr.get("raw", b""), now_ms,
        cdr_key=cdr.get("cdr_key"), account=cdr.get("account"))


def _ms_opt(v) -> int | None:
    return None if v is None else _ms(v)


def rated_record(cdr: dict, r, period: str, now_ms: int) -> dict:
    return {
        "cdr_key": cdr["cdr_key"], "account": cdr["account"], "service_user": cdr.get("service_user", ""),
        "period": period, "switch_id": cdr["switch_id"], "call_id": cdr["call_id"], "leg": cdr["leg"],
        "correlation_id": cdr["correlation_id"], "direction": cdr["direction"],
        "caller_e164": cdr["caller_e164"], "presented_cli": cdr["presented_cli"],
        "called_e164": cdr["called_e164"], "called_type": cdr["called_type"], "trunk": cdr.get("trunk", ""),
        "destination": r.destination, "prefix": r.prefix, "start_ms": _ms(cdr["start_ms"]),
        "end_ms": _ms(cdr["end_ms"]), "duration_s": cdr["duration_s"], "billsec_s": cdr["billsec_s"],
        "answered": cdr["answered"], "disposition": cdr["disposition"], "service": cdr.get("service", "voice"),
        "charged_s": r.charged_s, "rate_micros": r.rate_micros, "rate_unit_s": r.rate_unit_s,
        "connect_fee_micros": r.connect_fee_micros, "cost_nanos": r.cost_nanos, "cost_micros": r.cost_micros,
        "tariff_plan": r.tariff_plan, "tariff_version": r.tariff_version, "rating_version": 1,
        "rated_at_ms": now_ms, "ingest_ms": cdr.get("ingest_ms", 0),
        "source_partition": cdr.get("source_partition", -1), "source_offset": cdr.get("source_offset", -1),
        "spans": spans_text(r, cdr.get("service", "voice")),
        "currency": getattr(r, "currency", ""),
        # A partial keeps its place in the call, so a rerate prices it as its slice (core/partials.py).
        "partial_seq": int(cdr.get("partial_seq") or 0), "answer_ms": _ms_opt(cdr.get("answer_ms")),
    }


class ChargeBatch:
    """Applies the inputs of one partition's batch to the account states it holds."""

    def __init__(self, states: dict[str, dict | None], rate: Callable, now_ms: int,
                 horizon_days: int = 35, book=None, keys: Callable[[bytes], bytes | None] | None = None,
                 closed=None):
        self.states = states
        self.rate = rate
        # With a tariff book, the plan's extra rules apply too: volume tiers, partner
        # commissions and recurring subscription fees (streams/core/tariff/extras.py).
        self.book = book
        self.now_ms = now_ms
        self.horizon_days = horizon_days
        # Closed financial periods (streams.core.periods.ClosedPeriods) or None: none closed.
        self.closed = closed
        self.out = BatchResult()
        # ``keys`` reads a node of the key store (streams/core/dedup.py).
        self.index = KeyIndex(keys or (lambda _nk: None))
        # Per account: the entries the account value must carry after this batch (``kpend``).
        self._pending: dict[str, dict[str, dict]] = {}

    def command(self, cmd: dict, topic: str, offset: int) -> None:
        acct = cmd["account"]
        state = self.states.get(acct)
        self.out.commands += 1
        if state is not None and credit.is_replay(state, topic, offset):
            if replies.wanted(cmd):
                self.out.replies.append(replies.applied(cmd, state, [], self.now_ms))
            return
        try:
            state, events = thresholds.apply_account_command(state, currency.provision(cmd, self.book), self.now_ms)
        except (KeyError, ValueError) as exc:
            self.out.command_errors.append(f"{acct}: {exc}")
            if replies.wanted(cmd):
                self.out.replies.append(replies.refused(cmd, exc, self.now_ms))
            return
        credit.mark_offset(state, topic, offset)
        self.states[acct] = state
        self._emit(state, events)
        self.out.notifications += thresholds.notifications_from_barring(events)
        self.out.touched.add(acct)
        if replies.wanted(cmd):
            self.out.replies.append(replies.applied(cmd, state, events, self.now_ms))

    def cdrs(self, cdrs: list[dict], topic: str, partition: int, offset: int) -> None:
        for cdr in cdrs:
            self._cdr(cdr, topic, partition, offset)
        for acct in {c["account"] for c in cdrs}:
            state = self.states.get(acct)
            if state is not None:
                credit.mark_offset(state, topic, offset)

    def _cdr(self, cdr: dict, topic: str, partition: int, offset: int) -> None:
        acct = cdr["account"]
        state = self.states.get(acct)
        if state is None:
            err = RejectError(Reason.UNKNOWN_ACCOUNT, f"account {acct!r} is not provisioned")
            self._reject(cdr, err.reason, err.detail)
            return
        replay = credit.is_replay(state, topic, offset)
        start_ms = _ms(cdr["start_ms"])
        day = _day(start_ms)
        kid = key_id(cdr["cdr_key"])
        applied = self._applied_near(acct, state, day, kid, topic)
        if applied is None and (legacy := legacy_key_of(cdr)) is not None:   # a key stored by keys v1
            applied = self._applied_near(acct, state, day, key_id(legacy), topic)
        cfg = credit.config(state)
        if applied is not None:
            if replay:
                if applied[0] == UNKNOWN_DIGEST or applied[0] == content_digest(cdr):
                    self._re_emit(state, cdr, cfg)
                else:
                    self.out.redelivered_conflicts += 1
            else:
                self.out.duplicates += 1
                state["dups"] = state.get("dups", 0) + 1
                self.out.touched.add(acct)
            return
        try:
            r = self.rate(cdr, cfg.tariff_plan)
            currency.check(cfg, r)
        except RejectError as exc:
            self._reject(cdr, exc.reason, exc.detail)
            return
        r, commissions = self._extras(state, cdr, cfg, r, start_ms)
        period = period_of(start_ms, cfg.timezone, cfg.period_kind)
        late_of = None
        if self.closed is not None and self.closed.locked(acct, period, start_ms):
            # A closed financial period's total never moves: booked in the open one instead.
            late_of, period = period, credit.open_period(state, self.now_ms)
        # Spend, limits and the service user's monthly thresholds move together.
        events, notes = thresholds.apply_cdr_charge(
            state, period=period, start_ms=start_ms, service_user=cdr.get("service_user", ""),
            cost_micros=r.cost_micros, at_ms=self.now_ms, cause_key=cdr["cdr_key"],
            cause_ingest_ms=cdr.get("ingest_ms"), late_of=late_of)
        self._add_key(acct, state, day, kid, content_digest(cdr), offset)
        self.out.rated.append(rated_record(cdr, r, period, self.now_ms))
        for partner, c in commissions:
            rec = rated_record(cdr, c, period, self.now_ms)
            rec["cdr_key"] = f"{cdr['cdr_key']}#commission:{partner}"
            self.out.commissions.append(rec)
        self._emit(state, events)
        self.out.notifications.extend(notes)
        self.out.touched.add(acct)

    def _extras(self, state: dict, cdr: dict, cfg, r, start_ms: int):
        """Volume coefficient (by the account's charged minutes this month before the call) and
        the partners' commissions of one rated CDR."""
        if self.book is None:
            return r, []
        ex = extras_for(self.book, cfg.tariff_plan, cdr)
        if ex.volume_tiers:
            month = period_of(start_ms, cfg.timezone, MONTHLY)
            used = state.get("minutes", {}).get(month, 0)
            r = apply_coefficient(r, volume_tier(ex, Fraction(used, 60)), ex.rounding)
            # A new dict (never in place: the old one may be the stored value); three months kept.
            months = {m: v for m, v in state.get("minutes", {}).items() if m != month}
            keep = sorted(months)[-2:]
            state["minutes"] = {**{m: months[m] for m in keep}, month: used + r.charged_s}
        return r, [(p.partner, commission(r, p, cdr=cdr, book=self.book, rounding=ex.rounding))
                   for p in ex.commission]

    def _subscriptions(self, acct: str, state: dict) -> None:
        """Recurring fees of the account's plan, once per credit period, at its start."""
        if self.book is None or state.get("subs_period") == state["period"]:
            return
        cfg = credit.config(state)
        period = state["period"]
        state["subs_period"] = period
        try:
            start_ms, _ = period_bounds(period, cfg.timezone)
            ex = self.book.extras_at(cfg.tariff_plan, start_ms)
            sub = ex.subscription
            if sub is None or sub.period != cfg.period_kind:
                return      # a monthly fee is never charged per week (or the other way round)
            version = self.book.version_at(cfg.tariff_plan, start_ms).version
        except (RejectError, KeyError, ValueError):
            return
        for item, micros in sub.items:
            self.out.rated.append({**subscription_record(acct, period, item, micros, start_ms, cfg.tariff_plan,
                                                         version, self.now_ms),
                                   "currency": currency.plan_currency(self.book, cfg.tariff_plan) or ""})
    def _account_keys(self, acct: str, state: dict) -> dict[str, dict]:
        """This batch's pending entries of an account, set up on its first CDR: the entries its
        value carried (``kpend``, the last batch's) that the store lacks are written again, as
        a crash may have lost that node write; they stay pending until a batch finds them."""
        pending = self._pending.get(acct)
        if pending is not None:
            return pending
        pending = self._pending[acct] = {}
        carried = decode_pending(state.get("kpend"))
        oldest = oldest_day(self.now_ms, self.horizon_days)
        # Values written before the key store held the keys in ``seen`` (day -> 16 hex chars);
        # they move to the store like pending entries (the billed copy is unknown for them).
        for day, shorts in (state.pop("seen", None) or {}).items():
            if int(day) >= oldest:
                carried.setdefault(day, {}).update((key_id(s), (UNKNOWN_DIGEST, 0)) for s in shorts)
        days = set(state.get("kdays", ()))
        for day, entries in carried.items():
            if int(day) < oldest:
                continue
            for kid, entry in entries.items():
                if self.index.lookup(acct, day, kid) != entry:
                    self.index.add(acct, day, kid, *entry)
                    pending.setdefault(day, {})[kid] = entry
                    days.add(day)
        state["kdays"] = sorted(days)
        return pending

    def _applied(self, acct: str, state: dict, day: str, kid: bytes, topic: str) -> tuple[bytes, int] | None:
        """(billed digest, offset) if the account applied this key, else None."""
        pending = self._account_keys(acct, state)
        entry = pending.get(day, {}).get(kid)
        if entry is not None:
            return entry
        entry = self.index.lookup(acct, day, kid)
        # A node written by a batch whose account value a crash lost: that batch never happened
        # for the books, and its redelivery must apply the CDR again.
        if entry is not None and entry[1] > state["off"].get(topic, -1):
            return None
        return entry

    def _applied_near(self, acct: str, state: dict, day: str, kid: bytes, topic: str) -> tuple[bytes, int] | None:
        """``_applied`` in the copy's call day, then in the days next to it that hold keys.

        Keys are stored by the call day of the copy that was billed; a re-sent copy whose start
        moved across midnight UTC (a second's jitter, or a switch that re-derives it in another
        zone) would otherwise be looked up in the wrong bucket and billed twice. Any shift under
        24 h moves the day by at most one, so ``ADJACENT_DAYS`` = 1 covers it; larger shifts
        are not recognised (README, "Correctness rules")."""
        entry = self._applied(acct, state, day, kid, topic)
        if entry is not None:
            return entry
        held = state["kdays"]           # set up by the _applied call above
        d = int(day)
        for step in range(1, ADJACENT_DAYS + 1):
            for near in (str(d - step), str(d + step)):
                if near in held and (entry := self._applied(acct, state, near, kid, topic)) is not None:
                    return entry
        return None

    def _add_key(self, acct: str, state: dict, day: str, kid: bytes, digest: bytes, offset: int) -> None:
        self.index.add(acct, day, kid, digest, offset)
        self._pending[acct].setdefault(day, {})[kid] = (digest, offset)
        if day not in state["kdays"]:
            state["kdays"] = sorted([*state["kdays"], day])

    def _expire_keys(self, acct: str, state: dict) -> None:
        """Forget the key-store days that left the dedup horizon (older calls are refused by the
        normaliser, so their keys can no longer be needed)."""
        oldest = oldest_day(self.now_ms, self.horizon_days)
        old = [d for d in state.get("kdays", ()) if int(d) < oldest]
        for day in old:
            self.index.drop_day(acct, day)
            self._pending.get(acct, {}).pop(day, None)
        if old:
            state["kdays"] = [d for d in state["kdays"] if int(d) >= oldest]

    def _re_emit(self, state: dict, cdr: dict, cfg) -> None:
        self.out.redelivered += 1
        try:
            r = self.rate(cdr, cfg.tariff_plan)
        except RejectError:
            return
        period = period_of(_ms(cdr["start_ms"]), cfg.timezone, cfg.period_kind)
        if self.closed is not None and self.closed.locked(cdr["account"], period, _ms(cdr["start_ms"])):
            period = credit.open_period(state, self.now_ms)     # where _cdr booked it
        self.out.rated.append(rated_record(cdr, r, period, self.now_ms))
        self.out.events.extend(e for e in state.get("recent", []) if e["cause_cdr_key"] == cdr["cdr_key"])
        self.out.notifications.extend(thresholds.redelivered(state, cdr["cdr_key"]))

    def _emit(self, state: dict, events: list[dict]) -> None:
        if not events:
            return
        self.out.events.extend(events)
        # A new list, never an in-place change: the old one may be the table's stored value.
        state["recent"] = (state.get("recent", []) + events)[-RECENT_EVENTS:]

    def _reject(self, cdr: dict, reason: Reason, detail: str) -> None:
        self.out.rejects.append(cdr_reject(cdr, reason, detail, self.now_ms))

    def finish(self) -> BatchResult:
        for acct in self.out.touched:
            st = self.states.get(acct)
            if st is not None:
                self._subscriptions(acct, st)
                self._expire_keys(acct, st)
                if acct in self._pending:
                    st["kpend"] = encode_pending(self._pending[acct])
        self.out.key_writes = self.index.writes()
        return self.out


def subscription_record(account: str, period: str, item: str, micros: int, start_ms: int, plan: str,
                        version: str, now_ms: int) -> dict:
    """A recurring fee as a rated item of the period's bill (its key makes it land once)."""
    key = f"sub:{account}:{period}:{item}"
    return {
        "cdr_key": key, "account": account, "service_user": "", "period": period, "switch_id": "cdrflow",
        "call_id": key, "leg": "", "correlation_id": key, "direction": "none", "caller_e164": "",
        "presented_cli": "", "called_e164": "", "called_type": "unknown", "trunk": "", "destination": item,
        "prefix": "", "start_ms": start_ms, "end_ms": start_ms, "duration_s": 0, "billsec_s": 0,
        "answered": False, "disposition": "SUBSCRIPTION", "service": "subscription", "charged_s": 0,
        "rate_micros": micros, "rate_unit_s": 0, "connect_fee_micros": 0, "cost_nanos": micros * 1000,
        "cost_micros": micros, "tariff_plan": plan, "tariff_version": version, "rating_version": 1,
        "rated_at_ms": now_ms, "ingest_ms": now_ms, "source_partition": -1, "source_offset": -1,
    }


def utc_now_ms() -> int:
    return int(datetime.now(timezone.utc).timestamp() * 1000)
