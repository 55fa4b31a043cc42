"""Authorisation before a call: may this account call this number, at what rate, for how long?
Used by call controllers and pay-per-minute IVRs (prepaid time limit).

The rules, in the order they apply (README "Authorisation before a call" says the same):

1. **Always-allowed numbers** are read in the caller's numbering context, like a dialled number.
   A number the normaliser classifies ``emergency`` there (112, and 911 in a US or NL context)
   is allowed in every profile. An account's always-allowed entry is either a *dialled code*
   (an entry that itself reads as an emergency number or short code, e.g. ``112``, ``1233``),
   which matches only that code dialled as such, or a *number range* written with ``+``, the
   international prefix or the trunk prefix (``+31800``, ``0031800``, ``0800`` in NL), which
   matches E.164 numbers starting with it. A dialled code is never a prefix of an international
   number: ``911`` does not let anyone call India (+91 1…).
2. ``blocked`` allows nothing else; an unknown rate (no tariff) is refused; a destination above
   the profile's maximum per-minute rate is refused.
3. **Time limit**: the longest call whose full rated cost — the pipeline's own rater with every
   tariff rule (connect fee, first increment, minimum duration, free seconds, schedules, caps,
   rounding, the account's volume tier) — fits in the credit left: credit − period spend −
   reservations of other calls in progress.
4. **Quota**: a call is granted at most ``quota_s`` seconds at a time (Diameter credit-control
   style); it reserves the cost of what it was granted and renews with an interim update, which
   grants the next slice from the credit then left. So two concurrent calls each get a slice
   instead of the first one holding the whole credit.

Reservations are plain JSON-able dicts per account (``Reservations``), so the worker can keep
them in a changelogged table: a restarted or new owner of the account honours them. Each one
expires on its own: ``PENDING_AFTER_END_MS`` after its grant runs out (a call that neither
renewed nor ended is presumed cut at its grant) or after the call-end report, unless its
rated CDR settles it first.

**Settling by the rated CDR.** A reservation made with the call's id (``call_id``: the value the
switch writes as the canonical CDR's ``call_id``, for Kamailio the SIP Call-ID) stops holding
money as soon as the account's spend holds the call: every rated CDR of the same account and
call id is recorded in the entry by its ``cdr_key`` (so a redelivered copy changes nothing) and
the entry then holds only ``amount - rated``; a rated CDR of the whole call (partial sequence 0,
recognised by its key) settles it (holds 0). Partial records of a long call each lower the hold by
their cost; since their costs add up to the call's rated cost (streams/core/partials.py), the
hold of an ended call reaches 0 with its last partial.
"""
from __future__ import annotations

import secrets
from dataclasses import dataclass
from fractions import Fraction
from typing import Callable

from streams.core import credit
from streams.core import profiles as P
from streams.core.numbering import lookup
from streams.core.periods import MONTHLY, period_of
from streams.core.keys import cdr_key as key_of
from streams.core.reasons import Reason, RejectError
from streams.core.sources import DEFAULT_CONTEXT, NumberingContext
from streams.core.tariff.extras import apply_coefficient, volume_tier
from streams.core.tariff.prefixes import declared_for

MAX_RESERVATION_S = 4 * 3600      # no grant, and no time limit, ever reaches beyond four hours
DEFAULT_QUOTA_S = 600             # what one authorisation or update grants at most (10 minutes)
PENDING_AFTER_END_MS = 300_000    # how long a finished (or presumed cut) call's cost is held until its CDR lands

EMERGENCY = "emergency"
_CODE_TYPES = ("emergency", "short_code")


# --- always-allowed numbers ------------------------------------------------------------------

def read_entry(entry: str, ctx: NumberingContext = DEFAULT_CONTEXT) -> tuple[str, str] | None:
    """An always-allowed entry as ("code", digits) or ("range", E.164 digits), or None when it
    is neither (ignored). The entry reads as a dialled number in ``ctx`` would."""
    e = entry.strip()
    if not e:
        return None
    got = lookup(e, ctx)
    if type(got) is tuple and got[1] in _CODE_TYPES:
        return "code", got[0]
    if e.startswith("+"):
        digits = e[1:]
    elif e.startswith(ctx.international_prefix):
        digits = e[len(ctx.international_prefix):]
    elif ctx.trunk_prefix and e.startswith(ctx.trunk_prefix):
        digits = str(ctx.country_code) + e[len(ctx.trunk_prefix):]
    else:
        return None
    return ("range", digits) if digits.isascii() and digits.isdigit() else None


def always_allowed(number: str, number_type: str, entries, ctx: NumberingContext = DEFAULT_CONTEXT) -> str | None:
    """Why ``number`` (as the normaliser wrote it in ``ctx``) is always allowed, or None."""
    if number_type == EMERGENCY:
        return "emergency"
    code = not number.startswith("+")
    digits = number if code else number[1:]
    for entry in entries:
        got = read_entry(entry, ctx)
        if got is None:
            continue
        kind, value = got
        if kind == "code" and code and digits == value:
            return entry
        if kind == "range" and not code and number_type not in _CODE_TYPES and digits.startswith(value):
            return entry
    return None


# --- what a call would cost -------------------------------------------------------------------

@dataclass(frozen=True)
class Quote:
    """The price list one call would be rated by, as the pipeline would rate it.

    Before the call its trunk (unless given), call-centre stage and operator are unknown, so every
    destination the number could match is a candidate and a call costs the most any of them
    charges (``variants``: one CDR shape per candidate, each rated by the real ``TariffBook.rate``).
    """

    rate: Callable                 # TariffBook.rate
    plan: str
    variants: tuple                # CDR dicts without billsec
    rate_micros_per_min: int       # highest per-minute rate of the candidates
    coefficient: Fraction          # the account's volume tier for this call
    rounding: object               # the version's rounding (applies with the coefficient)

    def cost(self, seconds: int) -> int:
        """Micro-units an answered call of ``seconds`` would be charged (what enters the spend)."""
        if seconds <= 0:
            return 0
        best = 0
        for v in self.variants:
            r = self.rate({**v, "billsec_s": seconds, "duration_s": seconds,
                           "end_ms": v["answer_ms"] + seconds * 1000}, self.plan)
            if self.coefficient != 1:
                r = apply_coefficient(r, self.coefficient, self.rounding)
            best = max(best, r.cost_micros)
        return best


def month_minutes_s(state: dict, at_ms: int) -> int:
    """The account's charged seconds this month before the call (what picks its volume tier)."""
    cfg = credit.config(state)
    return state.get("minutes", {}).get(period_of(at_ms, cfg.timezone, MONTHLY), 0)


def quote(book, plan: str, number: str, number_type: str, at_ms: int, trunk: str | None = None,
          minutes_used_s: int = 0) -> Quote:
    """Raises RejectError(NO_TARIFF) when no destination of the plan can price the number."""
    v = book.version_at(plan, at_ms)
    digits = number[1:] if number.startswith("+") else number
    base = {"direction": "outbound", "called_e164": number, "called_type": number_type, "caller_e164": "",
            "trunk": trunk or "", "stage": "", "start_ms": at_ms, "answer_ms": at_ms, "answered": True,
            "service": "voice"}
    variants: dict[tuple, dict] = {}
    best = None
    if getattr(book.plan(plan), "rater", None) is not None:
        # A plan with its own rater (CGRateS semantics, cgr_engine) has no prefix indexes here:
        # its own maximum rate, and the rater itself through TariffBook.rate, price the call.
        best = book.max_rate_per_min_micros(plan, number, at_ms)
        variants[()] = base
    elif digits.isascii() and digits.isdigit():
        for conds, idx in v.indexes.get("outbound", ()):
            if not declared_for(conds, number, number_type):
                continue
            if any(k == "called_type" and val != number_type for k, val in conds):
                continue
            if trunk is not None and any(k == "trunk" and val != trunk for k, val in conds):
                continue
            hit = idx.longest(digits)
            if hit is None:
                continue
            variants.setdefault(conds, {**base, **dict(conds)})
            r = hit[1].max_rate_per_min_micros
            best = r if best is None or r > best else best
    if best is None:
        raise RejectError(Reason.NO_TARIFF, f"plan {plan!r} version {v.version}: no outbound destination for {number!r}")
    ex = v.extras
    coef = volume_tier(ex, Fraction(minutes_used_s, 60)) if ex.volume_tiers else Fraction(1)
    return Quote(book.rate, plan, tuple(variants.values()), best, coef, ex.rounding)


def time_limit(cost: Callable[[int], int], budget_micros: int, cap_s: int = MAX_RESERVATION_S) -> int:
    """The longest whole-second duration d <= cap_s with cost(d) <= budget (0 when not even 1 s).

    Binary search is exact because the rated cost never decreases with the duration: a longer
    call lays the same increments from the call's start plus more (each priced >= 0, the same in
    every schedule period it covers), the connect fee, minimum duration and free seconds do not
    depend on the length, a max_cost cap is min(cap, x), the volume coefficient is fixed for the
    call, and every rounding rule (up, down, half-even, per call or per increment) maps a larger
    amount to a result at least as large. (Whatever the rater, the answer never overshoots:
    cost(limit) <= budget is checked, never inferred.)
    """
    if cap_s < 1 or cost(1) > budget_micros:
        return 0
    if cost(cap_s) <= budget_micros:
        return cap_s
    lo, hi = 1, cap_s                     # cost(lo) <= budget < cost(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if cost(mid) <= budget_micros:
            lo = mid
        else:
            hi = mid
    return lo


# --- the decision -----------------------------------------------------------------------------

def decide(state: dict | None, number: str, number_type: str, q: Quote | None, reserved_micros: int,
           now_ms: int, ctx: NumberingContext = DEFAULT_CONTEXT, quota_s: int = DEFAULT_QUOTA_S,
           used_s: int = 0) -> dict:
    """The decision for one call attempt, or for the next slice of a call that has run ``used_s``
    seconds (pure; the caller creates or renews the reservation of ``reserve_micros``).

    ``q`` is None when the number has no tariff; ``reserved_micros`` holds the other calls'
    reservations. ``max_duration_s`` is the grant: how many more seconds the call may run before
    it must renew (or end); ``limit_s`` is how long the credit left would pay for in all.
    """
    if state is None:
        if number_type == EMERGENCY:
            return {"allowed": True, "reason": "always_allowed", "profile": None, "max_duration_s": None,
                    "reserve_micros": 0}
        return {"allowed": False, "reason": "unknown_account", "profile": None}
    cfg = credit.config(state)
    profile = credit.effective_profile(state, cfg)
    prof = cfg.profiles[profile]        # the customer's own maximum prices (seed 000)
    allowed_list = P.allowed_destinations(prof, cfg.always_allowed)
    spend = state["spend"].get(state["period"], 0)
    remaining = cfg.credit_micros - spend - reserved_micros
    base = {"account": cfg.account, "profile": profile, "period": state["period"], "number_type": number_type,
            "rate_micros_per_min": q.rate_micros_per_min if q else None,
            "max_rate_micros_per_min": prof.max_rate_micros_per_min,
            "spend_micros": spend, "credit_micros": cfg.credit_micros,
            "remaining_micros": max(remaining, 0), "allowed_destinations": allowed_list,
            "reserve_micros": 0, "limit_s": 0}
    why = always_allowed(number, number_type, allowed_list, ctx)
    if why is not None:
        return {**base, "allowed": True, "reason": "always_allowed", "allowed_by": why, "max_duration_s": None}
    if profile == P.BLOCKED:
        return {**base, "allowed": False, "reason": "blocked", "max_duration_s": 0}
    if q is None:
        return {**base, "allowed": False, "reason": "no_tariff", "max_duration_s": 0}
    if q.rate_micros_per_min > prof.max_rate_micros_per_min:
        return {**base, "allowed": False, "reason": "rate_above_profile_max", "max_duration_s": 0}
    limit = time_limit(q.cost, remaining)
    granted_total = min(limit, used_s + max(quota_s, 1))
    if granted_total <= used_s:
        return {**base, "allowed": False, "reason": "no_credit_left", "max_duration_s": 0, "limit_s": limit}
    free = q.cost(MAX_RESERVATION_S) == 0
    return {**base, "allowed": True, "reason": "free_destination" if free else "ok",
            "max_duration_s": granted_total - used_s, "granted_total_s": granted_total, "limit_s": limit,
            "reserve_micros": q.cost(granted_total)}


# --- reservations -----------------------------------------------------------------------------

def new_reservation_id(account: str) -> str:
    # Random, not a per-process counter: ids must stay unique across restarts and owners.
    return f"{account}:{secrets.token_hex(8)}"


def rated_so_far(entry: dict) -> int:
    """Micro-units of this call already in the account's spend (its rated CDRs so far)."""
    return sum(entry.get("rated", {}).values())


def outstanding(entry: dict) -> int:
    """What the entry still holds: nothing once the whole call is rated, else its amount less
    what the spend already holds of the call (never below 0)."""
    if entry.get("settled"):
        return 0
    return max(0, entry["amount"] - rated_so_far(entry))


def is_whole_call(rec: dict) -> bool:
    """Whether a rated CDR bills the whole call (partial sequence 0). The rated record carries no
    partial number, but its key is the hash of (switch, call id, leg, partial sequence)
    (streams/core/keys.py), so a key equal to that of sequence 0 says it exactly."""
    return rec.get("cdr_key") == key_of(rec.get("switch_id") or "", rec.get("call_id") or "", rec.get("leg") or "", 0)


class Reservations:
    """Reservations per account as JSON-able dicts ``{rid: entry}``, read and written through
    ``load(account)`` / ``save(account, entries)`` (a changelogged table in the worker; a dict
    by default). Expired entries are dropped whenever an account's reservations are read.

    An entry: ``amount`` (micro-units, the cost from the call's start), ``expires_ms``,
    ``granted_s`` (seconds granted from the call's start), ``ended``, the call's pricing facts
    (``plan``, ``number``, ``type``, ``trunk``, ``at_ms``, ``minutes_s``) so an update or the end
    is priced like the grant, and ``call_id`` (or None) with ``rated`` ({cdr_key: cost}) and
    ``settled`` once its rated CDRs land (see the module docstring).
    """

    def __init__(self, load: Callable[[str], dict | None] | None = None,
                 save: Callable[[str, dict], None] | None = None):
        self._mem: dict[str, dict] = {}
        self._load = load or self._mem.get
        self._save = save or self._mem.__setitem__

    def entries(self, account: str, now_ms: int) -> dict:
        res = dict(self._load(account) or {})
        live = {rid: e for rid, e in res.items() if e["expires_ms"] > now_ms}
        if len(live) != len(res):
            self._save(account, live)
        return live

    def held(self, account: str, now_ms: int, exclude: str | None = None) -> int:
        return sum(outstanding(e) for rid, e in self.entries(account, now_ms).items() if rid != exclude)

    def held_for_update(self, account: str, rid: str, now_ms: int) -> int:
        """What an interim update of ``rid`` must count as held besides the spend: the other
        calls' holds, less what the spend already holds of this call (its rated partials), since
        the renewed grant is priced from the call's start."""
        e = self.entries(account, now_ms).get(rid) or {}
        return self.held(account, now_ms, exclude=rid) - rated_so_far(e)

    def settle(self, records, now_ms: int) -> int:
        """Apply rated CDRs (dicts with ``account``, ``call_id``, ``cdr_key``, ``cost_micros``,
        ``switch_id``, ``leg``) to the reservations of their calls. Idempotent: a record already
        applied changes nothing and writes nothing. Returns how many entries changed."""
        by_account: dict[str, list] = {}
        for r in records:
            if r.get("account") and r.get("call_id"):
                by_account.setdefault(r["account"], []).append(r)
        changed = 0
        for account, recs in by_account.items():
            if not self._load(account):
                continue
            res = self.entries(account, now_ms)
            n = 0
            for rid, e in list(res.items()):
                mine = [r for r in recs if r["call_id"] == e.get("call_id")]
                if not mine or e.get("settled"):
                    continue
                rated = dict(e.get("rated", {}))
                for r in mine:
                    rated[r["cdr_key"]] = int(r["cost_micros"])
                whole = any(is_whole_call(r) for r in mine)
                if rated == e.get("rated", {}) and not whole:
                    continue
                e = {**e, "rated": rated}
                if whole:
                    # The call is over and in the spend: hold nothing, forget it soon.
                    e.update(settled=True, ended=True, expires_ms=min(e["expires_ms"], now_ms + PENDING_AFTER_END_MS))
                res[rid] = e
                n += 1
            if n:
                self._save(account, res)
                changed += n
        return changed

    def get(self, account: str, rid: str, now_ms: int) -> dict | None:
        return self.entries(account, now_ms).get(rid)

    def add(self, account: str, call: dict, decision: dict, now_ms: int, rid: str | None = None) -> str:
        rid = rid or new_reservation_id(account)
        res = self.entries(account, now_ms)
        res[rid] = {"call_id": None, **call, "amount": decision["reserve_micros"],
                    "granted_s": decision["granted_total_s"], "ended": False, "expires_ms": now_ms + decision["max_duration_s"] * 1000 + PENDING_AFTER_END_MS}
        self._save(account, res)
        return rid

    def renew(self, account: str, rid: str, decision: dict, used_s: int, amount_if_refused: int, now_ms: int) -> dict:
        """An interim update: a new grant replaces the old one; a refused one keeps holding the cost
        of what the call has used, until the call ends or is presumed cut."""
        res = self.entries(account, now_ms)
        e = dict(res[rid])
        if decision["allowed"]:
            e.update(amount=decision["reserve_micros"], granted_s=decision["granted_total_s"],
                     expires_ms=now_ms + decision["max_duration_s"] * 1000 + PENDING_AFTER_END_MS)
        else:
            e.update(amount=amount_if_refused, granted_s=used_s, expires_ms=now_ms + PENDING_AFTER_END_MS)
        res[rid] = e
        self._save(account, res)
        return e

    def end(self, account: str, rid: str, amount: int, now_ms: int) -> dict | None:
        """The call ended: hold its real cost until the rated CDR has had time to enter the spend."""
        res = self.entries(account, now_ms)
        if rid not in res:
            return None
        old = res[rid]
        e = {**old, "amount": min(old["amount"], amount) if old["ended"] else amount, "ended": True,
             # A call its CDR already settled is only kept to answer this report: no longer.
             "expires_ms": old["expires_ms"] if old.get("settled") else now_ms + PENDING_AFTER_END_MS}
        res[rid] = e
        self._save(account, res)
        return e
