"""Rules beyond pricing one CDR: volume coefficients, partner commission, subscription fees.

Pure and exact (integers and Fractions). The configuration lives per tariff version (see
"Extra rules" in :mod:`streams.core.tariff.model`); the charge step supplies what one CDR does
not know: the account's minutes so far this month, the billing period label.

Typical wiring, per rated CDR::

    book = current_book()
    r = book.rate(cdr, plan)
    ex = book.extras_at(plan, cdr_answer_or_start_ms)      # or extras_for(book, plan, cdr)
    r = apply_coefficient(r, volume_tier(ex, minutes_so_far), ex.rounding)
    partner_ratings = [commission(r, p, cdr=cdr, book=book, rounding=ex.rounding) for p in ex.commission]

and once per account and period: ``subscription_charges(book.extras_at(plan, period_start),
period_label)`` (or :func:`book_subscription_charges`).

The operator-location / dedicated-operator rule of the call-centre agent stage needs no code
here: it is a destination condition (``when: {stage: agent, operator_dedicated: true}``)
matched by ``TariffBook.rate`` against the optional CDR keys ``operator_location`` and
``operator_dedicated``.
"""
from __future__ import annotations

import re
from fractions import Fraction
from typing import Any, Mapping

from streams.core.money import round_nanos
from streams.core.periods import MONTHLY, WEEKLY, period_bounds
from streams.core.tariff.model import Extras, Partner, Rating, RoundingRule, Subscription
from streams.core.tariff.rating import TariffBook

ONE = Fraction(1)
_LABELS = {MONTHLY: re.compile(r"^\d{4}-(0[1-9]|1[0-2])$"), WEEKLY: re.compile(r"^\d{4}-W(0[1-9]|[1-4]\d|5[0-3])$")}


def _half_even(x: Fraction) -> int:
    # Same sub-nano rounding rule as rating: exact rational -> whole nanos, half to even.
    q, r = divmod(x.numerator, x.denominator)
    twice = 2 * r
    if twice > x.denominator or (twice == x.denominator and q & 1):
        q += 1
    return q


def _tiers(cfg: Extras | tuple) -> tuple:
    return cfg.volume_tiers if isinstance(cfg, Extras) else tuple(cfg)


def volume_tier(plan_cfg: Extras | tuple, minutes_so_far: int | Fraction) -> Fraction:
    """The coefficient for an account that has used ``minutes_so_far`` minutes this month.

    The tier whose ``from_minutes`` is the highest one <= minutes_so_far applies; no tiers
    means the list price (coefficient 1). Minutes so far may be fractional (charged seconds/60).
    """
    if minutes_so_far < 0:
        raise ValueError(f"minutes_so_far must be >= 0, got {minutes_so_far}")
    coef = ONE
    for t in _tiers(plan_cfg):
        if t.from_minutes <= minutes_so_far:
            coef = t.coefficient
        else:
            break
    return coef


def apply_coefficient(rating: Rating, coefficient: Fraction, rounding: RoundingRule) -> Rating:
    """The rating scaled by an exact coefficient.

    ``cost_nanos`` becomes the exact product rounded half-even to nanos, then ``cost_micros``
    is rounded once by ``rounding`` (the version's rule). Per-increment rounding of the
    original rating is not replayed: the discount applies to the unrounded total. Rate and
    connect fee fields stay the list price.
    """
    coefficient = Fraction(coefficient)
    if coefficient == ONE:
        return rating
    if coefficient < 0:
        raise ValueError("a coefficient must be >= 0")
    nanos = _half_even(rating.cost_nanos * coefficient)
    return rating._replace(cost_nanos=nanos, cost_micros=round_nanos(nanos, rounding.decimals, rounding.method))


def commission(rating: Rating, partner_cfg: Partner, *, cdr: Mapping[str, Any] | None = None,
               book: TariffBook | None = None, rounding: RoundingRule | None = None) -> Rating:
    """The partner's commission on one rated CDR, as its own Rating labelled ``partner_cfg.label``.

    * ``percent``: percent/100 of our unrounded ``cost_nanos`` (half-even to nanos), rounded
      once by ``rounding`` (default: half-even to micros). ``rate_micros`` and
      ``connect_fee_micros`` are scaled the same way (half-even to micros), for itemisation.
    * ``plan``: the CDR priced again by the partner's plan in ``book`` (both required);
      that plan's own rounding applies.
    """
    if partner_cfg.plan is not None:
        if cdr is None or book is None:
            raise ValueError(f"commission for {partner_cfg.partner!r} uses plan {partner_cfg.plan!r}: pass cdr and book")
        return book.rate(cdr, plan=partner_cfg.plan)._replace(tariff_plan=partner_cfg.label)
    rr = rounding or RoundingRule()
    share = Fraction(partner_cfg.percent) / 100
    nanos = _half_even(rating.cost_nanos * share)
    return rating._replace(
        cost_nanos=nanos,
        cost_micros=round_nanos(nanos, rr.decimals, rr.method),
        rate_micros=_half_even(rating.rate_micros * share),
        connect_fee_micros=_half_even(rating.connect_fee_micros * share),
        tariff_plan=partner_cfg.label,
    )


def subscription_charges(plan_cfg: Extras | Subscription | None, period_label: str) -> list[tuple[str, int]]:
    """Recurring fees for one period: ``[(item, micro-units), ...]`` in file order.

    The label must be of the subscription's period kind ('2026-03' monthly, '2026-W10'
    weekly): charging a monthly fee for a week label would bill it four times a month.
    """
    sub = plan_cfg.subscription if isinstance(plan_cfg, Extras) else plan_cfg
    if sub is None:
        return []
    if not _LABELS[sub.period].match(period_label):
        raise ValueError(f"period label {period_label!r} is not a {sub.period} label")
    return list(sub.items)


def book_subscription_charges(book: TariffBook, plan: str, period_label: str, tz: str | None = None) -> list[tuple[str, int]]:
    """Fees of ``plan`` for ``period_label``, from the version in force at the period's start.

    ``tz`` is the account's time zone for the period boundary (default: the plan's).
    """
    start_ms, _ = period_bounds(period_label, tz or book.timezone(plan))
    return subscription_charges(book.extras_at(plan, start_ms), period_label)


def extras_for(book: TariffBook, plan: str, cdr: Mapping[str, Any]) -> Extras:
    """The extras of the version that prices this CDR (answer time, else start time)."""
    at = cdr.get("answer_ms")
    return book.extras_at(plan, cdr["start_ms"] if at is None else at)


__all__ = ["volume_tier", "apply_coefficient", "commission", "subscription_charges",
           "book_subscription_charges", "extras_for"]
