"""Per-account credit control: spend per period, soft/hard limits, profiles and transitions.

State is a plain dict (it is stored in a Faust table as JSON), manipulated only through the
functions here. Replays are recognised by the offset of the input message that last changed
the account: each account lives on one partition, so offsets per source topic only grow.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from streams.core import profiles as P
from streams.core.keys import event_id
from streams.core.periods import KINDS, period_of

# How many past periods keep their spend, so late CDRs can still be applied and corrected.
KEEP_PERIODS = 3


@dataclass(frozen=True, slots=True)
class AccountConfig:
    account: str
    timezone: str = "UTC"
    period_kind: str = "monthly"
    credit_micros: int = 0
    soft_limit_pct: int = 80
    tariff_plan: str = "default"
    always_allowed: tuple[str, ...] = ()
    max_rate_normal_micros: int | None = None    # the customer's own maximum prices per minute
    max_rate_low_micros: int | None = None       # (seed 000); None: streams.core.profiles defaults
    currency: str | None = None                  # ISO 4217; None: stored before currencies (any plan's)

    def __post_init__(self):
        if self.period_kind not in KINDS:
            raise ValueError(f"period_kind must be one of {KINDS}, got {self.period_kind!r}")
        if not 0 < self.soft_limit_pct <= 100:
            raise ValueError("soft_limit_pct must be 1..100")
        if self.credit_micros < 0:
            raise ValueError("credit must not be negative")
        P.validate_max_rates(self.max_rate_normal_micros, self.max_rate_low_micros)

    @property
    def profiles(self) -> dict[str, P.Profile]:
        return P.profiles_for(self.max_rate_normal_micros, self.max_rate_low_micros)

    def to_dict(self) -> dict:
        d = {"account": self.account, "timezone": self.timezone, "period_kind": self.period_kind,
             "credit_micros": self.credit_micros, "soft_limit_pct": self.soft_limit_pct,
             "tariff_plan": self.tariff_plan, "always_allowed": list(self.always_allowed)}
        if self.max_rate_normal_micros is not None or self.max_rate_low_micros is not None:
            d["max_rate_normal_micros"] = self.max_rate_normal_micros
            d["max_rate_low_micros"] = self.max_rate_low_micros
        if self.currency is not None:
            d["currency"] = self.currency
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "AccountConfig":
        return _cached_config(d["account"], d["timezone"], d["period_kind"], int(d["credit_micros"]),
                              int(d["soft_limit_pct"]), d["tariff_plan"], tuple(d.get("always_allowed") or ()),
                              d.get("max_rate_normal_micros"), d.get("max_rate_low_micros"), d.get("currency"))


# Every CDR needs its account's config several times (rating plan, period, limits), and the
# stored state holds it as a plain dict. Building and validating the frozen dataclass each time
# was ~4 constructions per CDR on the hot path; equal values give an equal, immutable object,
# so one cached instance per distinct config is safe.
@lru_cache(maxsize=1 << 16)
def _cached_config(*fields) -> AccountConfig:
    return AccountConfig(*fields)


def soft_limit_micros(cfg: AccountConfig) -> int:
    # Integer ceiling: the soft limit is reached only when spend really is >= pct% of credit.
    return -((-cfg.credit_micros * cfg.soft_limit_pct) // 100)


def new_state(cfg: AccountConfig, now_ms: int) -> dict:
    return {"cfg": cfg.to_dict(), "period": period_of(now_ms, cfg.timezone, cfg.period_kind),
            "spend": {}, "profile": P.NORMAL, "seq": 0, "unbar_until": None, "forced": None,
            "off": {}, "applied": 0, "dups": 0, "last_event": None, "past_profiles": {}}


def config(state: dict) -> AccountConfig:
    return AccountConfig.from_dict(state["cfg"])


def computed_profile(spend: int, cfg: AccountConfig, unbar_until: int | None = None) -> str:
    """The profile that spend alone gives. ``unbar_until`` is the spend a partner's unbar allows
    (see :func:`unbar_limit`): above the credit the account is blocked unless an unbar is in
    force and the spend has not grown past it."""
    if spend >= cfg.credit_micros and (unbar_until is None or unbar_until is False or spend > unbar_until):
        return P.BLOCKED
    if spend >= soft_limit_micros(cfg):
        return P.LOW_CREDIT
    return P.NORMAL


def unbar_limit(state: dict) -> int | None:
    """The spend up to which a manual unbar lets calls through in the current period, or None.

    Unbar rule (README, "Credit rules"): an unbar lifts the block at the spend it finds; the
    next charge that raises the period's spend above ``spend at unbar + extra`` blocks the
    account again (reason ``hard_limit``). ``extra`` is the optional allowance the partner gives
    with the unbar (default 0: calls in progress may finish, the next charged call re-blocks).
    Only raising the credit gives lasting relief: calls stop until the partner raises it."""
    if state.get("unbarred") is True and state.get("unbar_until") is None:
        # A state written before unbar had a limit: pinned once, at the spend it holds when
        # first read (always before a charge adds to it), then stored like a fresh unbar.
        state["unbar_until"] = state["spend"].get(state["period"], 0)
    state.pop("unbarred", None)
    return state.get("unbar_until")


def effective_profile(state: dict, cfg: AccountConfig) -> str:
    spend = state["spend"].get(state["period"], 0)
    computed = computed_profile(spend, cfg, unbar_limit(state))
    forced = state.get("forced")
    # A partner may restrict an account further, but a forced profile never lifts a hard block.
    if forced and P.ORDER[forced] > P.ORDER[computed]:
        return forced
    return computed


@dataclass(slots=True)
class Outcome:
    """What one input did to an account."""
    applied: bool = False
    duplicate_offset: bool = False
    events: list[dict] = field(default_factory=list)


def is_replay(state: dict, topic: str, offset: int) -> bool:
    return offset <= state["off"].get(topic, -1)


def mark_offset(state: dict, topic: str, offset: int) -> None:
    if offset > state["off"].get(topic, -1):
        state["off"][topic] = offset


def _event(state: dict, cfg: AccountConfig, period: str, old: str, new: str, reason: str, at_ms: int,
           cause_key: str | None, cause_ingest_ms: int | None, correction: bool = False) -> dict:
    state["seq"] += 1
    prof = cfg.profiles[new]
    ev = {
        "event_id": event_id(cfg.account, state["seq"]), "account": cfg.account, "seq": state["seq"],
        "period": period, "old_profile": old, "new_profile": new,
        "spend_micros": state["spend"].get(period, 0), "credit_micros": cfg.credit_micros,
        "soft_limit_micros": soft_limit_micros(cfg), "reason": reason, "cause_cdr_key": cause_key,
        "at_ms": at_ms, "cause_ingest_ms": cause_ingest_ms,
        "max_rate_micros_per_min": prof.max_rate_micros_per_min,
        "allowed_destinations": P.allowed_destinations(prof, cfg.always_allowed),
        "correction": correction,
    }
    state["last_event"] = ev
    return ev


def _spend_reason(old: str, new: str) -> str:
    if new == P.BLOCKED:
        return "hard_limit"
    if new == P.LOW_CREDIT and old == P.NORMAL:
        return "soft_limit"
    return "spend_changed"


def roll_period(state: dict, period: str, at_ms: int, cause_key: str | None = None,
                cause_ingest_ms: int | None = None) -> list[dict]:
    """Move the account into a newer period: spend restarts, the profile resets to normal."""
    cfg = config(state)
    if period <= state["period"]:
        return []
    old = effective_profile(state, cfg)
    state["period"] = period
    _clear_unbar(state)
    state["forced"] = None
    for p in sorted(state["spend"])[:-KEEP_PERIODS]:
        del state["spend"][p]
    new = effective_profile(state, cfg)
    if new != old:
        return [_event(state, cfg, period, old, new, "period_reset", at_ms, cause_key, cause_ingest_ms)]
    return []


def apply_charge(state: dict, period: str, cost_micros: int, at_ms: int, cause_key: str,
                 cause_ingest_ms: int | None = None) -> list[dict]:
    """Add one rated CDR's cost to its period. Returns the transitions it caused."""
    cfg = config(state)
    events = roll_period(state, period, at_ms, cause_key, cause_ingest_ms)
    state["applied"] += 1
    if period < state["period"]:
        return events + _apply_late(state, cfg, period, cost_micros, at_ms, cause_key, cause_ingest_ms)
    old = effective_profile(state, cfg)
    state["spend"][period] = state["spend"].get(period, 0) + cost_micros
    new = effective_profile(state, cfg)
    if new != old:
        events.append(_event(state, cfg, period, old, new, _spend_reason(old, new), at_ms, cause_key,
                             cause_ingest_ms))
        state["profile"] = new
    return events


LATE_CLOSED = "late_cdr_closed_period"


def open_period(state: dict, now_ms: int) -> str:
    """The period new bookings go to: the account's current one, or now's if that is later."""
    cfg = config(state)
    return max(state["period"], period_of(now_ms, cfg.timezone, cfg.period_kind))


def late_closed_event(state: dict, closed_period: str, now_ms: int, cause_key: str,
                      cause_ingest_ms: int | None = None) -> dict:
    """The correction event of a CDR whose financial period is *closed*. Its cost was booked in
    the open period (:func:`open_period`, limits there apply as to any charge); the closed
    period's spend never changes, and this event (reason ``late_cdr_closed_period``, period =
    the closed one, profile unchanged) says so every time, crossing or not."""
    cfg = config(state)
    closed_profile = computed_profile(state["spend"].get(closed_period, 0), cfg)
    return _event(state, cfg, closed_period, closed_profile, closed_profile, LATE_CLOSED, now_ms,
                  cause_key, cause_ingest_ms, correction=True)


def _apply_late(state, cfg, period, cost, at_ms, cause_key, cause_ingest_ms) -> list[dict]:
    """A late CDR belongs to its own (past) period. If it pushes that period over a limit the
    current profile is unaffected, but a correction event says so: never a silent change."""
    before = state["spend"].get(period, 0)
    after = before + cost
    state["spend"][period] = after
    old = computed_profile(before, cfg)
    new = computed_profile(after, cfg)
    if new != old:
        return [_event(state, cfg, period, old, new, "late_correction", at_ms, cause_key, cause_ingest_ms,
                       correction=True)]
    return []


def apply_command(state: dict | None, cmd: dict, now_ms: int) -> tuple[dict, list[dict]]:
    """Apply a control command (provision, credit changes, unbar, set_profile)."""
    action = cmd["action"]
    if action == "provision":
        cfg = AccountConfig(
            account=cmd["account"], timezone=cmd.get("timezone") or "UTC",
            period_kind=cmd.get("period_kind") or "monthly", credit_micros=int(cmd.get("credit_micros") or 0),
            soft_limit_pct=int(cmd.get("soft_limit_pct") or 80), tariff_plan=cmd.get("tariff_plan") or "default",
            always_allowed=tuple(cmd.get("always_allowed") or ()),
            max_rate_normal_micros=_opt_int(cmd.get("max_rate_normal_micros")),
            max_rate_low_micros=_opt_int(cmd.get("max_rate_low_micros")), currency=cmd.get("currency") or None)
        if state is None:
            # The account starts in the period of the command's issue time, not of whenever the
            # agent happens to apply it: a replayed or delayed provisioning gives the same state.
            return new_state(cfg, int(cmd.get("issued_ms") or now_ms)), []
        return _reconfigure(state, cfg, "credit_changed", now_ms)
    if state is None:
        raise KeyError(f"account {cmd['account']!r} is not provisioned")
    cfg = config(state)
    if action in ("set_credit", "raise_credit", "lower_credit"):
        amount = int(cmd["credit_micros"])
        credit = {"set_credit": amount, "raise_credit": cfg.credit_micros + amount,
                  "lower_credit": max(0, cfg.credit_micros - amount)}[action]
        new_cfg = AccountConfig(**{**cfg.to_dict(), "credit_micros": credit,
                                   "always_allowed": cfg.always_allowed})
        return _reconfigure(state, new_cfg, "credit_changed", now_ms)
    if action == "unbar":
        extra = int(cmd.get("credit_micros") or 0)
        if extra < 0:
            raise ValueError("an unbar allowance must not be negative")
        old = effective_profile(state, cfg)
        state["unbar_until"] = state["spend"].get(state["period"], 0) + extra
        state.pop("unbarred", None)
        state["forced"] = None
        return state, _transition_if_changed(state, cfg, old, "unbar", now_ms)
    if action == "set_profile":
        prof = cmd.get("profile")
        if prof not in P.ORDER:
            raise ValueError(f"unknown profile {prof!r}; use one of {list(P.ORDER)}")
        old = effective_profile(state, cfg)
        state["forced"] = None if prof == P.NORMAL else prof
        if prof == P.NORMAL:
            # "normal" lifts a block exactly like an unbar without allowance.
            state["unbar_until"] = state["spend"].get(state["period"], 0)
            state.pop("unbarred", None)
        return state, _transition_if_changed(state, cfg, old, "profile_set", now_ms)
    if action == "roll_period":
        # Sent by the worker's period timer: resets an idle account at its local boundary.
        return state, roll_period(state, period_of(now_ms, cfg.timezone, cfg.period_kind), now_ms)
    if action == "adjust_spend":
        return state, adjust_spend(state, cmd.get("period") or state["period"], int(cmd["delta_micros"]), now_ms)
    raise ValueError(f"unknown action {action!r}")


def _opt_int(v) -> int | None:
    return None if v is None else int(v)


def adjust_spend(state: dict, period: str, delta_micros: int, now_ms: int) -> list[dict]:
    """A rerate changed a period's spend by ``delta_micros`` (either sign). The current period
    re-evaluates the profile (a transition with reason ``rerate``); a past period only gets a
    correction event when it crosses a limit, like a late CDR."""
    cfg = config(state)
    if period > state["period"]:
        roll_period(state, period, now_ms)
    if period < state["period"]:
        before = state["spend"].get(period, 0)
        state["spend"][period] = before + delta_micros
        old, new = computed_profile(before, cfg), computed_profile(before + delta_micros, cfg)
        if old != new:
            return [_event(state, cfg, period, old, new, "rerate", now_ms, None, None, correction=True)]
        return []
    old = effective_profile(state, cfg)
    state["spend"][period] = state["spend"].get(period, 0) + delta_micros
    return _transition_if_changed(state, cfg, old, "rerate", now_ms)


def _reconfigure(state: dict, cfg: AccountConfig, reason: str, now_ms: int) -> tuple[dict, list[dict]]:
    old = effective_profile(state, config(state))
    state["cfg"] = cfg.to_dict()
    # A raised credit lifts a block by itself; a manual unbar only lasts until the next limit.
    _clear_unbar(state)
    return state, _transition_if_changed(state, cfg, old, reason, now_ms)


def _clear_unbar(state: dict) -> None:
    state["unbar_until"] = None
    state.pop("unbarred", None)


def _transition_if_changed(state: dict, cfg: AccountConfig, old: str, reason: str, now_ms: int) -> list[dict]:
    new = effective_profile(state, cfg)
    state["profile"] = new
    if new != old:
        return [_event(state, cfg, state["period"], old, new, reason, now_ms, None, None)]
    return []


def snapshot(state: dict, now_ms: int) -> dict:
    """The account.state record for call controllers."""
    cfg = config(state)
    prof = cfg.profiles[effective_profile(state, cfg)]
    return {"account": cfg.account, "period": state["period"], "profile": prof.name,
            "spend_micros": state["spend"].get(state["period"], 0), "credit_micros": cfg.credit_micros,
            "soft_limit_micros": soft_limit_micros(cfg), "seq": state["seq"], "updated_ms": now_ms,
            "max_rate_micros_per_min": prof.max_rate_micros_per_min,
            "allowed_destinations": P.allowed_destinations(prof, cfg.always_allowed),
            "currency": cfg.currency or ""}
