"""Pricing one CDR against a loaded tariff book. Integers only; see model.py for the rules."""
from __future__ import annotations

from bisect import bisect_right
from typing import Any, Mapping

from streams.core.money import round_nanos
from streams.core.partials import rate_slice
from streams.core.reasons import Reason, RejectError
from streams.core.tariff.prefixes import declared_for
from streams.core.tariff.model import Destination, Group, Plan, Rating, RoundingRule, Version

OUTBOUND = "outbound"
INBOUND = "inbound"
INBOUND_TOLL_FREE = "inbound_toll_free"
SIDES = (OUTBOUND, INBOUND, INBOUND_TOLL_FREE)


def _half_even_div(n: int, d: int) -> int:
    # The one sub-nano rounding point: exact rational cost -> whole nanos, half to even.
    q, r = divmod(n, d)
    twice = 2 * r
    if twice > d or (twice == d and q & 1):
        q += 1
    return q


def lay_increments(groups: tuple[Group, ...], priced_s: int) -> tuple[int, list[tuple[int, int, Group]]]:
    """Increments covering ``priced_s`` seconds: (charged seconds, [(offset_s, count, group)])."""
    t = 0
    segs: list[tuple[int, int, Group]] = []
    last = len(groups) - 1
    for i, g in enumerate(groups):
        if t >= priced_s:
            break
        if i < last:
            limit = groups[i + 1].start
            if t >= limit:
                # Increments of an earlier group overshot this group's start entirely.
                continue
            end = priced_s if priced_s < limit else limit
        else:
            end = priced_s
        n = -((t - end) // g.increment)
        segs.append((t, n, g))
        t += n * g.increment
    return t, segs


def _inc_micros(num: int, den: int, rr: RoundingRule) -> int:
    return round_nanos(_half_even_div(num, den), rr.decimals, rr.method)


def price_usage(dest: Destination, origin_ms: int, priced_s: int) -> tuple[int, int, int | None, int]:
    """Price ``priced_s`` seconds starting at ``origin_ms``.

    Returns (charged_s, unrounded nanos, sum of per-increment rounded micros or None,
    period id at the origin).
    """
    charged, segs = lay_increments(dest.groups, priced_s)
    rr = dest.rounding
    per_inc = rr.per_increment
    den = dest.den
    sched = dest.schedule
    if sched is None:
        num = 0
        inc_sum = 0
        for _, n, g in segs:
            w = g.weights[0]
            num += n * g.increment * w
            if per_inc:
                inc_sum += n * _inc_micros(g.increment * w, den, rr)
        return charged, _half_even_div(num, den), (inc_sum if per_inc else None), 0

    chunks = sched.chunks(origin_ms, origin_ms + charged * 1000)
    first_pid = chunks[0][2] if chunks else sched.period_at(origin_ms)
    den_ms = den * 1000
    num = 0
    inc_sum = 0
    for off, n, g in segs:
        a = origin_ms + off * 1000
        step = g.increment * 1000
        b = a + n * step
        ws = g.weights
        straddlers: set[int] = set()
        for s, e, pid in chunks:
            x = s if s > a else a
            y = e if e < b else b
            if y <= x:
                continue
            num += (y - x) * ws[pid]
            if per_inc:
                k0 = -((a - x) // step)
                k1 = (y - a) // step
                if k1 > k0:
                    inc_sum += (k1 - k0) * _inc_micros(g.increment * ws[pid], den, rr)
                if a < s < b and (s - a) % step:
                    straddlers.add((s - a) // step)
        for k in straddlers:
            ia = a + k * step
            ib = ia + step
            part = 0
            for s, e, pid in chunks:
                x = s if s > ia else ia
                y = e if e < ib else ib
                if y > x:
                    part += (y - x) * ws[pid]
            inc_sum += _inc_micros(part, den_ms, rr)
    return charged, _half_even_div(num, den_ms), (inc_sum if per_inc else None), first_pid


class TariffBook:
    """A loaded, validated, immutable set of tariff plans. Build it with ``load_tariff_book``."""

    __slots__ = ("_plans", "source")

    def __init__(self, plans: Mapping[str, Plan], source: str = ""):
        self._plans = dict(plans)
        self.source = source

    @property
    def plans(self) -> tuple[str, ...]:
        return tuple(self._plans)

    def versions(self, plan: str) -> tuple[str, ...]:
        return tuple(v.version for v in self._plan(plan).versions)

    def _plan(self, plan: str) -> Plan:
        p = self._plans.get(plan)
        if p is None:
            raise RejectError(Reason.NO_TARIFF, f"no tariff plan {plan!r}")
        return p

    def timezone(self, plan: str) -> str:
        return self._plan(plan).timezone

    def plan(self, plan: str) -> Plan:
        """The loaded plan (raises RejectError NO_TARIFF when absent)."""
        return self._plan(plan)

    def extras_at(self, plan: str, at_ms: int):
        """Volume tiers, commission and subscription of the version in force at ``at_ms``."""
        return self.version_at(plan, at_ms).extras

    def with_plans(self, plans: Mapping[str, Plan], source: str = "") -> "TariffBook":
        """A new book: this one's plans, with ``plans`` added or replacing same-named ones."""
        merged = dict(self._plans)
        merged.update(plans)
        return TariffBook(merged, source=source or self.source)

    def version_at(self, plan: str, at_ms: int) -> Version:
        p = self._plan(plan)
        i = bisect_right(p.starts, at_ms) - 1
        if i < 0:
            raise RejectError(Reason.NO_TARIFF, f"plan {plan!r} has no version in force at {at_ms} ms")
        return p.versions[i]

    def _lookup(self, v: Version, side: str, number: str, cdr: Mapping[str, Any] | None):
        digits = number[1:] if number[:1] == "+" else number
        if not (digits.isascii() and digits.isdigit()):
            return None
        # Short codes and emergency numbers match only destinations declared for their class.
        ntype = None if cdr is None or side == INBOUND_TOLL_FREE else cdr.get("called_type")
        for conds, idx in v.indexes.get(side, ()):
            if conds and (cdr is None or any(cdr.get(k) != val for k, val in conds)):
                continue
            if not declared_for(conds, number, ntype):
                continue
            hit = idx.longest(digits)
            if hit is not None:
                return hit
        return None

    def rate(self, cdr: Mapping[str, Any], plan: str = "default") -> Rating:
        r = self._rate(cdr, plan)
        # Every rating carries its plan's currency onto the rated row (streams/core/currency.py).
        cur = self._plans[plan].currency
        return r if r.currency == cur else r._replace(currency=cur)

    def _rate(self, cdr: Mapping[str, Any], plan: str = "default") -> Rating:
        if cdr.get("partial_seq"):
            # A partial is priced as its slice of the whole call, so per-call rules (connect
            # fee, minimum, rounding, max cost) apply once per call (streams/core/partials.py).
            return rate_slice(self.rate, cdr, plan)
        rater = self._plan(plan).rater
        if rater is not None:
            return rater(cdr, plan)
        at = cdr.get("answer_ms")
        if at is None:
            at = cdr["start_ms"]
        v = self.version_at(plan, at)
        service = cdr.get("service") or "voice"
        if service != "voice":
            price = v.services.get(service)
            if price is None:
                raise RejectError(Reason.NO_TARIFF, f"plan {plan!r} version {v.version} has no price for service {service!r}")
            rr = v.service_rounding
            nanos = price * 1000
            return Rating(nanos, round_nanos(nanos, rr.decimals, rr.method), 0, price, 0, 0,
                          service, "", plan, v.version)

        if cdr.get("direction") == INBOUND:
            if cdr.get("called_type") == "toll_free":
                side, number = INBOUND_TOLL_FREE, cdr.get("caller_e164") or ""
            else:
                side, number = INBOUND, cdr.get("called_e164") or ""
        else:
            side, number = OUTBOUND, cdr.get("called_e164") or ""
        hit = self._lookup(v, side, number, cdr)
        if hit is None:
            raise RejectError(Reason.NO_TARIFF, f"plan {plan!r} version {v.version}: no {side} destination for {number!r}")
        prefix, dest = hit

        rr = dest.rounding
        fee = dest.connect_fee_micros
        billsec = cdr.get("billsec_s") or 0
        if not cdr.get("answered") or billsec <= 0:
            fee = fee if dest.charge_unanswered else 0
            charged, nanos, inc_sum = 0, 0, (0 if rr.per_increment else None)
            pid = dest.schedule.period_at(at) if dest.schedule is not None else 0
        else:
            dur = billsec if billsec > dest.min_duration else dest.min_duration
            priced = dur - dest.free_seconds
            if priced > 0:
                charged, nanos, inc_sum, pid = price_usage(dest, at + dest.free_seconds * 1000, priced)
            else:
                charged, nanos, inc_sum = 0, 0, (0 if rr.per_increment else None)
                pid = dest.schedule.period_at(at) if dest.schedule is not None else 0
        nanos += fee * 1000
        cap = dest.max_cost_micros
        if cap is not None and nanos > cap * 1000:
            nanos = cap * 1000
        if inc_sum is None:
            micros = round_nanos(nanos, rr.decimals, rr.method)
        else:
            micros = inc_sum + round_nanos(fee * 1000, rr.decimals, rr.method)
            if cap is not None:
                micros = min(micros, round_nanos(cap * 1000, rr.decimals, rr.method))
        g0 = dest.groups[0]
        return Rating(nanos, micros, charged, g0.rates[pid], g0.unit, fee,
                      dest.name, prefix, plan, v.version)

    def max_rate_per_min_micros(self, plan: str, called_e164: str, at_ms: int) -> int:
        """Highest per-minute rate an outbound call to this number could be priced at.

        Conditions (trunk, stage, called type) are unknown before the call, so every
        outbound index is consulted and the highest rate of every period is taken.
        """
        rater = self._plan(plan).rater
        if rater is not None:   # CGRateS plan: its destinations and timings (cgr_engine)
            return rater.max_rate_per_min_micros(called_e164, at_ms)
        v = self.version_at(plan, at_ms)
        digits = called_e164[1:] if called_e164[:1] == "+" else called_e164
        best = None
        if digits.isascii() and digits.isdigit():
            for _, idx in v.indexes.get(OUTBOUND, ()):
                hit = idx.longest(digits)
                if hit is not None:
                    r = hit[1].max_rate_per_min_micros
                    best = r if best is None or r > best else best
        if best is None:
            raise RejectError(Reason.NO_TARIFF, f"plan {plan!r} version {v.version}: no outbound destination for {called_e164!r}")
        return best
