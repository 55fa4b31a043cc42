"""Authorisation before a call: may this account call this destination, at what rate, for how
long? Used by call controllers and pay-per-minute IVRs (prepaid time limit).

Concurrent calls must not overshoot the credit together, so every authorised call holds a
reservation worth its maximum duration; the next authorisation only sees the credit left after
the reservations. A call-end report shrinks the reservation to what the call really cost, and
the reservation expires once the rated CDR has had time to arrive and enter the spend.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from streams.core import credit
from streams.core import profiles as P

MAX_RESERVATION_S = 4 * 3600      # a single authorisation never holds more than four hours
PENDING_AFTER_END_MS = 300_000    # how long a finished call's cost is held until its CDR lands


@dataclass(slots=True)
class Reservation:
    rid: str
    account: str
    rate_micros_per_min: int
    amount_micros: int
    expires_ms: int


@dataclass
class Reservations:
    """Per-worker reservations (the worker owning the account answers, so one place holds them)."""
    by_account: dict[str, dict[str, Reservation]] = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))

    def held(self, account: str, now_ms: int) -> int:
        res = self.by_account.get(account)
        if not res:
            return 0
        for rid in [r for r, v in res.items() if v.expires_ms <= now_ms]:
            del res[rid]
        return sum(v.amount_micros for v in res.values())

    def add(self, account: str, rate: int, amount: int, duration_s: int, now_ms: int) -> Reservation:
        rid = f"{account}:{now_ms}:{next(self._ids)}"
        r = Reservation(rid, account, rate, amount, now_ms + duration_s * 1000 + PENDING_AFTER_END_MS)
        self.by_account.setdefault(account, {})[rid] = r
        return r

    def end(self, account: str, rid: str, duration_s: int, now_ms: int) -> Reservation | None:
        r = self.by_account.get(account, {}).get(rid)
        if r is None:
            return None
        # Per-second estimate, rounded up: the rated CDR will replace it with the exact cost.
        r.amount_micros = min(r.amount_micros, -((-r.rate_micros_per_min * max(duration_s, 0)) // 60))
        r.expires_ms = now_ms + PENDING_AFTER_END_MS
        return r


def _always_allowed(digits: str, prefixes: list[str]) -> bool:
    return any(digits.startswith(p) for p in prefixes if p)


def decide(state: dict | None, destination_e164: str, rate_micros_per_min: int | None, reserved_micros: int,
           now_ms: int) -> dict:
    """The decision for one call attempt (pure; the caller creates the reservation if allowed)."""
    if state is None:
        return {"allowed": False, "reason": "unknown_account", "profile": None}
    cfg = credit.config(state)
    profile = credit.effective_profile(state, cfg)
    prof = P.DEFAULT_PROFILES[profile]
    allowed_list = P.allowed_destinations(prof, cfg.always_allowed)
    digits = destination_e164.lstrip("+")
    spend = state["spend"].get(state["period"], 0)
    remaining = cfg.credit_micros - spend - reserved_micros
    base = {"account": cfg.account, "profile": profile, "period": state["period"],
            "rate_micros_per_min": rate_micros_per_min, "max_rate_micros_per_min": prof.max_rate_micros_per_min,
            "remaining_micros": max(remaining, 0), "allowed_destinations": allowed_list}
    if _always_allowed(digits, allowed_list):
        return {**base, "allowed": True, "reason": "always_allowed", "max_duration_s": None}
    if profile == P.BLOCKED:
        return {**base, "allowed": False, "reason": "blocked", "max_duration_s": 0}
    if rate_micros_per_min is None:
        return {**base, "allowed": False, "reason": "no_tariff", "max_duration_s": 0}
    if rate_micros_per_min > prof.max_rate_micros_per_min:
        return {**base, "allowed": False, "reason": "rate_above_profile_max", "max_duration_s": 0}
    if rate_micros_per_min == 0:
        return {**base, "allowed": True, "reason": "free_destination", "max_duration_s": MAX_RESERVATION_S}
    if remaining <= 0:
        return {**base, "allowed": False, "reason": "no_credit_left", "max_duration_s": 0}
    # Whole seconds the remaining credit pays for at this per-minute rate (rounded down).
    seconds = min(remaining * 60 // rate_micros_per_min, MAX_RESERVATION_S)
    if seconds < 1:
        return {**base, "allowed": False, "reason": "no_credit_left", "max_duration_s": 0}
    return {**base, "allowed": True, "reason": "ok", "max_duration_s": int(seconds)}
