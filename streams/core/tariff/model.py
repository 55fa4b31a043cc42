"""The tariff model: plans, versions, destinations, rate groups, schedules, services.

A **tariff book** holds named **plans**. A CDR names its plan (the account's plan); the book
prices it and returns a :class:`Rating`.

Plans and versions
    A plan has a time zone (IANA name, e.g. ``Europe/Amsterdam``) and one or more **versions**.
    Each version has an id and an ``effective_from`` instant (ISO 8601 with an offset; a naive
    time is refused because "midnight" without a zone is not an instant). The version in force
    at the call's answer time (its start time when it was never answered) prices the whole
    call, even when the call runs past the next version's start: a call has one price list.
    Each version is a full price list; ``extends: <earlier version id>`` copies an earlier
    version and replaces the destinations, schedules and services it names.

Destinations and prefixes
    A destination is a named set of digit prefixes (E.164 without ``+``; the empty prefix is
    refused so that a catch-all is always explicit, e.g. ``"1".."9"``). The longest matching
    prefix wins. A destination may be restricted:

    * ``applies_to``: ``outbound`` (default; matched on the called number), ``inbound_toll_free``
      (an inbound call whose ``called_type`` is ``toll_free``; matched on the **caller**
      number, because the account pays for calls to its 0800 number by where they come from),
      or ``inbound`` (other inbound calls; matched on the called number).
    * ``when``: conditions on CDR fields ``called_type``, ``stage`` (call-centre IVR / agent /
      post), ``trunk``, ``operator_location`` and ``operator_dedicated``. Each distinct
      condition set forms its own prefix index.

    Operator conditions (call-centre agent stage). The canonical CDR does not carry the
    operator yet, so ``rate()`` reads two *optional* keys of the CDR dict:
    ``operator_location`` (a string, e.g. ``"RU-MOW"`` or ``"remote"``) and
    ``operator_dedicated`` (a bool, ``true`` when the operator is dedicated to this customer).
    A CDR without the key matches no condition on it, so it falls back to the destination
    without that condition. The product rule "a dedicated operator's work is included in the
    subscription fee" is written as a zero-rated destination, e.g.
    ``when: {stage: agent, operator_dedicated: true}`` with rate ``"0"``, plus a
    ``subscription`` item for the dedicated operator.

    Tie-break, fixed and tested: among the indexes whose conditions all hold, the one with
    more conditions is tried first; at equal count ``called_type`` outranks ``stage`` which
    outranks ``trunk``, then ``operator_dedicated``, then ``operator_location``. The first index holding any matching prefix decides, by longest
    prefix. The same prefix twice in one index (same ``applies_to`` and conditions) is a load
    error, so no two destinations ever tie.

Rate groups (increments)
    A voice destination has ``groups``: ``[{start, rate, unit, increment}, ...]``. ``start``
    is seconds into the priced time (first group starts at 0, starts strictly increase),
    ``rate`` a price per ``unit`` seconds, ``increment`` the billing step. Increments are
    laid from the start of the priced time; each increment belongs to the group in force at
    the increment's start, so ``[{start: 0, increment: 60}, {start: 60, increment: 6}]`` is
    "first minute, then per 6 s". ``rate`` may be a map ``{period: price}`` when the
    destination has a ``schedule``; units and increments never depend on the period, so the
    charged time is the same at any hour.

Per-destination options
    ``connect_fee`` (once per answered call, i.e. on the first span only), ``min_duration``
    (an answered call is priced as at least this long), ``free_seconds`` (the first seconds
    after the minimum is applied are free; the increments start after them; this is also the
    "included initial duration" of pay-per-minute premium numbers, whose fixed fee is the
    ``connect_fee``), ``max_cost`` (cap on the whole call, connect fee included),
    ``charge_unanswered`` (an unanswered call pays the connect fee), ``rounding``.
    ``charged_s`` in the Rating is the priced time after minimum, free seconds and increments.

Unanswered calls
    ``answered`` false or ``billsec_s`` 0: still rated (a destination must match), cost 0,
    or the connect fee when ``charge_unanswered``.

Schedules
    A schedule, in the plan's time zone, gives every instant one **period**: ``rules`` of
    ``{period, days, from, to}`` (local wall-clock ``HH:MM``, ``to`` may be ``24:00``; rules
    may not overlap), a ``default`` period for the rest, and optionally ``holidays`` (a
    country code for the ``holidays`` package) with a ``holiday_period`` that covers the whole
    local holiday date. Period boundaries are turned into UTC instants per local date, so a
    day is 23 or 25 hours long across DST changes and nothing is double-counted. A call
    crossing a boundary is split to the millisecond: each part of the priced timeline is
    priced at its period's rate, while the increments still count from the call's start.

Services
    ``services: {sms: "0.05", email: ..., fax: ...}`` gives a flat price per item. A non-voice
    CDR is charged that price whether or not it is flagged answered (an item is an item);
    its Rating has destination = the service name and an empty prefix.

Money and rounding
    Prices are decimal strings parsed by :func:`streams.core.money.parse_money` into
    micro-units (more than 6 decimals is refused; YAML floats are refused). The exact cost is
    a rational number computed with integers; it is rounded half-even to whole nano-units
    once per call (per increment with ``per_increment``) - the only sub-nano rounding.
    ``cost_nanos`` is that unrounded total (connect fee included, ``max_cost`` applied).
    ``cost_micros`` is ``cost_nanos`` rounded once per call by the ``rounding`` method
    (``up`` | ``down`` | ``half_even``) to ``decimals`` (0..6). With ``per_increment: true``
    each increment's price (and the connect fee) is rounded on its own and the rounded
    parts are summed, then capped by ``max_cost`` rounded the same way.
    ``rate_micros`` / ``rate_unit_s`` in the Rating report the first group's rate in the
    period at the start of the priced time.

Extra rules (per version, YAML only; applied by :mod:`streams.core.tariff.extras`)
    These are not part of ``rate()``: the charge step applies them with account context that a
    single CDR does not have (minutes so far this month, the partner, the billing period).

    * ``volume_tiers: [{from_minutes: 0, coefficient: "1"}, {from_minutes: 1000, coefficient:
      "0.9"}]`` - volume coefficient by the account's charged minutes this month *before*
      the call (the whole call gets one tier; a call is never split across tiers). The first
      tier starts at 0; ``from_minutes`` strictly increase; coefficients are decimal strings
      >= 0 kept as exact fractions. Applied to the unrounded ``cost_nanos`` (rounded half-even
      to whole nanos), then rounded once by the version's ``rounding``; ``rate_micros`` and
      ``connect_fee_micros`` stay the list price so an itemised bill shows both.
    * ``commission: [{partner: acme, percent: "12.5"}, {partner: beta, plan: beta_prices}]`` -
      a second rating per partner: either a percentage of our unrounded cost, or the CDR
      priced again with another plan of the same file (the partner's price list). The result
      is a Rating whose ``tariff_plan`` is ``label`` (default ``commission:<partner>``).
    * ``subscription: {period: monthly, items: {platform: "150.00", dedicated_operator:
      "900.00"}}`` - recurring fees charged once per period (``monthly`` or ``weekly``, the
      labels of :mod:`streams.core.periods`); the version in force at the period's start
      decides the fees. No proration.

    ``extends`` copies these keys from the earlier version like any other key.

See :mod:`streams.core.tariff.loader` for the YAML and CSV file formats.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import NamedTuple

from streams.core.money import Rounding


class TariffError(ValueError):
    """An invalid tariff file. The whole file is refused; the message names file, row, problem."""

    def __init__(self, path: str, row: int | None, problem: str, where: str = ""):
        self.path = str(path)
        self.row = row
        self.problem = problem
        self.where = where
        at = f"row {row}" if row is not None else "file"
        loc = f" ({where})" if where else ""
        super().__init__(f"{self.path}: {at}{loc}: {problem}")


class Rating(NamedTuple):
    """The price of one CDR. A NamedTuple: immutable, slotted, and cheap to build per CDR."""

    cost_nanos: int
    cost_micros: int
    charged_s: int
    rate_micros: int
    rate_unit_s: int
    connect_fee_micros: int
    destination: str
    prefix: str
    tariff_plan: str
    tariff_version: str
    # CGRateS-rated plans: the cost breakdown, one tuple per time span
    # (start_ms, duration_ns, rate, unit_ns, increment_ns, increments, cost_nanos); see cgr_engine.
    spans: tuple = ()
    currency: str = ""              # the plan's currency (set by TariffBook.rate)


@dataclass(frozen=True, slots=True)
class RoundingRule:
    method: Rounding = Rounding.HALF_EVEN
    decimals: int = 6
    per_increment: bool = False


@dataclass(frozen=True, slots=True)
class Group:
    """One rate group. ``weights[p]`` is the rate of period p as nanos*den per second."""

    start: int
    unit: int
    increment: int
    rates: tuple[int, ...]          # micro-units per unit, one per period (index = period id)
    weights: tuple[int, ...]        # rate * 1000 * (den // unit): exact integer weight per second


@dataclass(frozen=True, slots=True)
class Destination:
    name: str
    groups: tuple[Group, ...]
    den: int                        # lcm of the group units: nanos = sum(seconds * weight) / den
    connect_fee_micros: int = 0
    min_duration: int = 0
    free_seconds: int = 0
    max_cost_micros: int | None = None
    charge_unanswered: bool = False
    rounding: RoundingRule = field(default_factory=RoundingRule)
    schedule: object | None = None  # streams.core.tariff.schedule.Schedule
    max_rate_per_min_micros: int = 0


@dataclass(frozen=True, slots=True)
class VolumeTier:
    from_minutes: int               # tier applies once the account has this many minutes this month
    coefficient: Fraction           # exact multiplier of the list price (1 = list price)


@dataclass(frozen=True, slots=True)
class Partner:
    """A partner/reseller commission: a percentage of our cost, or the partner's own price list."""

    partner: str
    percent: Fraction | None        # exactly one of percent / plan
    plan: str | None
    label: str                      # Rating.tariff_plan of the commission rating


@dataclass(frozen=True, slots=True)
class Subscription:
    period: str                     # "monthly" | "weekly" (streams.core.periods kinds)
    items: tuple[tuple[str, int], ...]   # (item, micro-units), in file order


@dataclass(frozen=True, slots=True)
class Extras:
    """Per-version rules outside per-call rating: see "Extra rules" in this module's docstring."""

    volume_tiers: tuple[VolumeTier, ...] = ()
    commission: tuple[Partner, ...] = ()
    subscription: Subscription | None = None
    rounding: RoundingRule = field(default_factory=RoundingRule)   # the version's rounding


@dataclass(slots=True)
class Version:
    version: str
    effective_from_ms: int
    indexes: dict                   # side -> ((conditions, PrefixIndex), ...) in precedence order
    services: dict[str, int]        # service -> flat price in micro-units
    service_rounding: RoundingRule
    extras: Extras = field(default_factory=Extras)


@dataclass(slots=True)
class Plan:
    name: str
    timezone: str
    versions: list[Version]
    starts: list[int]               # effective_from_ms of versions, sorted, for bisect
    rater: object | None = None     # callable(cdr, plan) -> Rating for CGRateS-semantics plans (cgr_engine)
    currency: str = "EUR"           # the tariff file's currency (streams/core/currency.py)
