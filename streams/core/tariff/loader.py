"""Reading tariff files (YAML or CSV) into a validated :class:`TariffBook`.

Any problem refuses the whole file with a :class:`TariffError` naming the file, the row (YAML
line or CSV row, header = row 1) and the problem: a half-loaded price list would misprice
calls silently, which is worse than not starting.

YAML form (``.yaml``/``.yml``)::

    plans:
      default:
        timezone: Europe/Amsterdam
        versions:
          - version: "2026-01"
            effective_from: "2026-01-01T00:00:00+01:00"
            extends: "2025-07"              # optional: copy an earlier version, then override
            rounding: {method: up, decimals: 4, per_increment: false}
            services: {sms: "0.05", email: "0.01", fax: "0.10"}
            schedules:
              national:
                default: off_peak
                rules: [{period: peak, days: mon-fri, from: "08:00", to: "19:00"}]
                holidays: NL                # or {country: NL, subdiv: ...}
                holiday_period: off_peak
            destinations:
              nl_mobile:
                prefixes: ["316"]           # or one string "316 3197"
                applies_to: outbound        # outbound | inbound | inbound_toll_free
                when: {trunk: "t1"}         # optional: called_type / stage / trunk /
                                            # operator_location / operator_dedicated (bool)
                schedule: national          # optional; then a rate may be {peak: .., off_peak: ..}
                groups:
                  - {start: 0, rate: "0.08", unit: 60, increment: 30}
                  - {start: 30, rate: "0.08", unit: 60, increment: 6}
                connect_fee: "0"            # optional, also: min_duration, free_seconds,
                                            # max_cost, charge_unanswered, rounding
            volume_tiers: [{from_minutes: 0, coefficient: "1"}, {from_minutes: 1000, coefficient: "0.9"}]
            commission: [{partner: acme, percent: "10"}]   # or {partner: x, plan: other_plan}
            subscription: {period: monthly, items: {platform: "150.00"}}

Prices, prefixes and times must be quoted strings: YAML 1.1 would read ``0.085`` as a float,
``010`` as octal 8 and ``19:00`` as the integer 1140.

CSV form (``.csv``): one row per (plan, version, destination, rate group). Columns (header
required; order free): ``plan, version, effective_from, timezone, destination, prefixes,
start, rate, unit, increment`` and optionally ``service, applies_to, called_type, stage,
trunk, operator_location, operator_dedicated, connect_fee, min_duration, free_seconds, max_cost, charge_unanswered, rounding,
decimals, per_increment``. ``prefixes`` is a space-separated list. Plan-, version- and
destination-level cells may be left empty on later rows; a filled cell must equal the first
one. A row whose ``service`` is sms/email/fax/... sets that service's flat price (``rate``).
CSV has no schedules; use YAML for time-of-day pricing.
"""
from __future__ import annotations

import csv
import io
from datetime import datetime
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from math import lcm
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from streams.core.money import Rounding, parse_money
from streams.core.periods import KINDS as PERIOD_KINDS, MONTHLY
from streams.core.tariff.model import (Destination, Extras, Group, Partner, Plan, RoundingRule, Subscription,
                                       TariffError, Version, VolumeTier)
from streams.core.tariff.prefixes import DuplicatePrefix, PrefixIndex
from streams.core.tariff.rating import INBOUND_TOLL_FREE, SIDES, OUTBOUND, TariffBook
from streams.core.tariff.schedule import DAY_NAMES, EPOCH, Schedule, _MS

# Also their precedence rank. The operator_* keys are optional CDR dict keys (see model.py).
CONDITION_KEYS = ("called_type", "stage", "trunk", "operator_dedicated", "operator_location")
BOOL_CONDITIONS = ("operator_dedicated",)
_PLAN_KEYS = {"timezone", "versions", "description"}
_VERSION_KEYS = {"version", "effective_from", "extends", "rounding", "schedules", "services",
                 "destinations", "description", "volume_tiers", "commission", "subscription"}
_TIER_KEYS = {"from_minutes", "coefficient"}
_PARTNER_KEYS = {"partner", "percent", "plan", "label"}
_SUBSCRIPTION_KEYS = {"period", "items", "description"}
_DEST_KEYS = {"prefixes", "applies_to", "when", "schedule", "groups", "connect_fee", "min_duration",
              "free_seconds", "max_cost", "charge_unanswered", "rounding", "description"}
_GROUP_KEYS = {"start", "rate", "unit", "increment"}
_SCHED_KEYS = {"default", "rules", "holidays", "holiday_period", "description"}
_RULE_KEYS = {"period", "days", "from", "to"}
_ROUNDING_KEYS = {"method", "decimals", "per_increment"}


class LDict(dict):
    """A mapping that remembers the row of itself and of each value, for error messages."""

    def __init__(self, *a: Any, line: int | None = None, **kw: Any):
        super().__init__(*a, **kw)
        self.line = line
        self.key_lines: dict[Any, int] = {}


class LList(list):
    def __init__(self, *a: Any, line: int | None = None):
        super().__init__(*a)
        self.line = line
        self.item_lines: list[int] = []


class _DupKey(Exception):
    def __init__(self, line: int, key: Any):
        self.line, self.key = line, key


class _Loader(yaml.SafeLoader):
    pass


def _construct_map(loader: _Loader, node: yaml.MappingNode) -> LDict:
    loader.flatten_mapping(node)   # resolves YAML merge keys (<<: *anchor)
    d = LDict(line=node.start_mark.line + 1)
    for k_node, v_node in node.value:
        k = loader.construct_object(k_node, deep=True)
        if k in d:
            raise _DupKey(k_node.start_mark.line + 1, k)
        d[k] = loader.construct_object(v_node, deep=True)
        d.key_lines[k] = v_node.start_mark.line + 1
    return d


def _construct_seq(loader: _Loader, node: yaml.SequenceNode) -> LList:
    out = LList(line=node.start_mark.line + 1)
    for item in node.value:
        out.append(loader.construct_object(item, deep=True))
        out.item_lines.append(item.start_mark.line + 1)
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


class _Ctx:
    def __init__(self, path: str):
        self.path = path

    def fail(self, node: Any, key: Any, where: str, problem: str) -> None:
        row = None
        if isinstance(node, LDict):
            row = node.key_lines.get(key, node.line)
        elif isinstance(node, LList):
            row = node.item_lines[key] if isinstance(key, int) and key < len(node.item_lines) else node.line
        raise TariffError(self.path, row, problem, where)

    def each_mapping(self, node: Any, key: str, where: str, allowed: set[str], item: str, shape: str,
                     required: bool = False, non_empty: bool = False):
        """(index, mapping, where) for each entry of the list of mappings under ``key``, checked
        for its keys. An optional list may be absent; errors name the row and the expected shape."""
        raw = node.get(key)
        if raw is None and not required:
            return
        if not isinstance(raw, list) or (non_empty and not raw):
            self.fail(node, key, where, f"{key} must be a {'non-empty ' if non_empty else ''}list of {shape}")
        for i, entry in enumerate(raw):
            w = f"{where}.{key}[{i}]"
            if not isinstance(entry, dict):
                self.fail(raw, i, w, f"a {item} must be a mapping {shape}")
            self.keys(entry, allowed, w)
            yield i, entry, w

    # -- scalar readers: each refuses what could silently mean something else ------------------
    def keys(self, node: Any, allowed: set[str], where: str) -> None:
        if not isinstance(node, dict):
            self.fail(node, None, where, f"expected a mapping, got {type(node).__name__}")
        for k in node:
            if k not in allowed:
                self.fail(node, k, where, f"unknown key {k!r} (allowed: {', '.join(sorted(allowed))})")

    def money(self, node: dict, key: str, where: str, default: int | None = 0) -> int | None:
        v = node.get(key)
        if v is None:
            return default
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            self.fail(node, key, where, f"{key} must be a quoted decimal string like \"0.085\", got {v!r}")
        try:
            m = parse_money(v)
        except (ValueError, ArithmeticError) as e:
            self.fail(node, key, where, f"{key} {v!r} is not a valid price: {e}")
        if m < 0:
            self.fail(node, key, where, f"{key} {v!r} is negative")
        return m

    def integer(self, node: dict, key: str, where: str, default: int | None, lo: int = 0) -> int:
        v = node.get(key)
        if v is None:
            if default is None:
                self.fail(node, key, where, f"{key} is required")
            return default  # type: ignore[return-value]
        if isinstance(v, str) and v.strip().isdigit():
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            self.fail(node, key, where, f"{key} must be a whole number, got {v!r}")
        if v < lo:
            self.fail(node, key, where, f"{key} must be >= {lo}, got {v}")
        return v

    def boolean(self, node: dict, key: str, where: str) -> bool:
        v = node.get(key, False)
        if isinstance(v, str) and v.strip().lower() in ("true", "false", "yes", "no", "1", "0", ""):
            return v.strip().lower() in ("true", "yes", "1")
        if not isinstance(v, bool):
            self.fail(node, key, where, f"{key} must be true or false, got {v!r}")
        return v

    def string(self, node: dict, key: str, where: str, required: bool = True) -> str | None:
        v = node.get(key)
        if v is None or v == "":
            if required:
                self.fail(node, key, where, f"{key} is required")
            return None
        if not isinstance(v, str):
            self.fail(node, key, where, f"{key} must be a quoted string, got {v!r}")
        return v

    def rounding(self, node: Any, where: str, base: RoundingRule) -> RoundingRule:
        if node is None:
            return base
        self.keys(node, _ROUNDING_KEYS, where)
        method = node.get("method", base.method.value)
        try:
            m = Rounding(method)
        except ValueError:
            self.fail(node, "method", where, f"rounding method {method!r} must be up, down or half_even")
        dec = self.integer(node, "decimals", where, base.decimals)
        if dec > 6:
            self.fail(node, "decimals", where, f"decimals must be 0..6, got {dec}")
        per = self.boolean(node, "per_increment", where) if "per_increment" in node else base.per_increment
        return RoundingRule(m, dec, per)


def _parse_instant(ctx: _Ctx, node: dict, key: str, where: str) -> int:
    v = node.get(key)
    if isinstance(v, str):
        try:
            v = datetime.fromisoformat(v)
        except ValueError:
            ctx.fail(node, key, where, f"{key} {node.get(key)!r} is not an ISO 8601 date-time")
    if not isinstance(v, datetime):
        ctx.fail(node, key, where, f"{key} must be an ISO 8601 date-time with an offset, got {v!r}")
    if v.tzinfo is None or v.utcoffset() is None:
        ctx.fail(node, key, where, f"{key} {node.get(key)!s} has no UTC offset; add one, e.g. +01:00")
    return (v - EPOCH) // _MS


def _parse_minute(ctx: _Ctx, node: dict, key: str, where: str) -> int:
    v = node.get(key)
    if not isinstance(v, str):
        ctx.fail(node, key, where, f"{key} must be a quoted \"HH:MM\", got {v!r}")
    try:
        hh, mm = v.split(":")
        h, m = int(hh), int(mm)
    except ValueError:
        ctx.fail(node, key, where, f"{key} {v!r} is not HH:MM")
    if not (0 <= m < 60 and (0 <= h < 24 or (h == 24 and m == 0))):
        ctx.fail(node, key, where, f"{key} {v!r} is not a time of day (00:00..24:00)")
    return h * 60 + m


def _parse_days(ctx: _Ctx, node: dict, where: str) -> frozenset[int]:
    v = node.get("days", "mon-sun")
    items = v.replace(",", " ").split() if isinstance(v, str) else v
    if not isinstance(items, list) or not items:
        ctx.fail(node, "days", where, f"days must be day names like mon-fri or [sat, sun], got {v!r}")
    out: set[int] = set()
    for it in items:
        if not isinstance(it, str):
            ctx.fail(node, "days", where, f"day {it!r} is not a day name")
        lo, _, hi = it.strip().lower().partition("-")
        if lo not in DAY_NAMES or (hi and hi not in DAY_NAMES):
            ctx.fail(node, "days", where, f"day {it!r} is not one of {', '.join(DAY_NAMES)} or a range like mon-fri")
        a, b = DAY_NAMES.index(lo), DAY_NAMES.index(hi or lo)
        if b < a:
            ctx.fail(node, "days", where, f"day range {it!r} runs backwards")
        out.update(range(a, b + 1))
    return frozenset(out)


_HOLIDAY_CACHE: dict[tuple[str, str | None], Any] = {}


def _holiday_calendar(ctx: _Ctx, node: dict, where: str) -> Any:
    import holidays as hol  # pure data package; loaded only when a tariff uses holidays

    v = node.get("holidays")
    if isinstance(v, dict):
        country, subdiv = v.get("country"), v.get("subdiv")
    else:
        country, subdiv = v, None
    if not isinstance(country, str):
        ctx.fail(node, "holidays", where, f"holidays must be a country code like NL, got {v!r}")
    key = (country, subdiv)
    if key not in _HOLIDAY_CACHE:
        try:
            _HOLIDAY_CACHE[key] = hol.country_holidays(country, subdiv=subdiv)
        except Exception as e:  # the holidays package raises various types for bad codes
            ctx.fail(node, "holidays", where, f"holidays {v!r}: {e}")
    return _HOLIDAY_CACHE[key]


def _build_schedule(ctx: _Ctx, name: str, node: Any, tz: str, where: str) -> Schedule:
    ctx.keys(node, _SCHED_KEYS, where)
    default = ctx.string(node, "default", where)
    periods: list[str] = [default]
    rules: list[tuple[frozenset[int], int, int, int]] = []
    for _i, r, w in ctx.each_mapping(node, "rules", where, _RULE_KEYS, "rule", "{period, days, from, to}"):
        period = ctx.string(r, "period", w)
        days = _parse_days(ctx, r, w)
        lo, hi = _parse_minute(ctx, r, "from", w), _parse_minute(ctx, r, "to", w)
        if hi <= lo:
            ctx.fail(r, "to", w, f"to {r['to']!r} must be after from {r['from']!r} (split a rule that crosses midnight in two)")
        for d in days:
            for od, olo, ohi, opid in rules:
                if d in od and lo < ohi and olo < hi:
                    ctx.fail(r, "from", w, f"rule overlaps the {periods[opid]!r} rule on {DAY_NAMES[d]}")
        if period not in periods:
            periods.append(period)
        rules.append((days, lo, hi, periods.index(period)))
    cal, hp = None, None
    if node.get("holidays") is not None:
        cal = _holiday_calendar(ctx, node, where)
        hp_name = ctx.string(node, "holiday_period", where)
        if hp_name not in periods:
            periods.append(hp_name)
        hp = periods.index(hp_name)
    elif node.get("holiday_period") is not None:
        ctx.fail(node, "holiday_period", where, "holiday_period needs holidays (a country code)")
    return Schedule(name, tz, tuple(periods), 0, rules, cal, hp)


def _build_destination(ctx: _Ctx, name: str, node: Any, where: str, schedules: dict[str, Schedule],
                       rounding: RoundingRule) -> tuple[Destination, list[str], str, tuple]:
    ctx.keys(node, _DEST_KEYS, where)
    raw_p = node.get("prefixes")
    prefixes = raw_p.split() if isinstance(raw_p, str) else raw_p
    if not isinstance(prefixes, list) or not prefixes:
        ctx.fail(node, "prefixes", where, "prefixes must be a non-empty list of quoted digit strings")
    for p in prefixes:
        if not isinstance(p, str):
            ctx.fail(node, "prefixes", where, f"prefix {p!r} must be a quoted string (YAML reads 010 as octal)")
        if not (p.isascii() and p.isdigit()):
            ctx.fail(node, "prefixes", where, f"prefix {p!r} must be one or more digits 0-9 (no '+', no empty catch-all)")
    side = node.get("applies_to", OUTBOUND)
    if side not in SIDES:
        ctx.fail(node, "applies_to", where, f"applies_to {side!r} must be one of {', '.join(SIDES)}")
    when = node.get("when") or {}
    ctx.keys(when, set(CONDITION_KEYS), where + ".when")
    conds = []
    for k in CONDITION_KEYS:
        if k in when:
            if k in BOOL_CONDITIONS:
                # A bool, so that a CDR's True/False compares equal; "true" in CSV cells too.
                if when[k] in (None, ""):
                    ctx.fail(when, k, where + ".when", f"{k} must be true or false")
                conds.append((k, ctx.boolean(when, k, where + ".when")))
            else:
                conds.append((k, ctx.string(when, k, where + ".when")))
    sched = None
    sname = node.get("schedule")
    if sname is not None:
        if not isinstance(sname, str):
            ctx.fail(node, "schedule", where, f"schedule must be a schedule name, got {sname!r}")
        sched = schedules.get(sname)
        if sched is None:
            ctx.fail(node, "schedule", where, f"schedule {sname!r} is not defined in this version")
    periods = sched.periods if sched is not None else ("*",)

    parsed = []
    for i, g, w in ctx.each_mapping(node, "groups", where, _GROUP_KEYS, "group", "{start, rate, unit, increment}",
                                    required=True, non_empty=True):
        start = ctx.integer(g, "start", w, 0 if i == 0 else None)
        unit = ctx.integer(g, "unit", w, 60, lo=1)
        inc = ctx.integer(g, "increment", w, None, lo=1)
        if i == 0 and start != 0:
            ctx.fail(g, "start", w, "the first group must start at 0")
        if parsed and start <= parsed[-1][0]:
            ctx.fail(g, "start", w, f"group starts must increase ({start} after {parsed[-1][0]})")
        rv = g.get("rate")
        if isinstance(rv, dict):
            if sched is None:
                ctx.fail(g, "rate", w, "a rate per period needs a schedule on the destination")
            missing = [p for p in periods if p not in rv]
            extra = [p for p in rv if p not in periods]
            if missing or extra:
                ctx.fail(g, "rate", w, f"rate periods must be exactly {list(periods)} (missing {missing}, unknown {extra})")
            rates = tuple(ctx.money(rv, p, f"{w}.rate.{p}", None) for p in periods)
            if None in rates:
                ctx.fail(g, "rate", w, "every period needs a price")
        else:
            if rv is None:
                ctx.fail(g, "rate", w, "rate is required")
            r = ctx.money(g, "rate", w)
            rates = tuple(r for _ in periods)
        parsed.append((start, unit, inc, rates))
    den = 1
    for _, unit, _, _ in parsed:
        den = lcm(den, unit)
    groups = tuple(Group(s, u, inc, rates, tuple(r * 1000 * (den // u) for r in rates))
                   for s, u, inc, rates in parsed)
    max_per_min = max(-((-r * 60) // u) for _, u, _, rates in parsed for r in rates)
    mc = ctx.money(node, "max_cost", where, None)
    dest = Destination(
        name=name, groups=groups, den=den,
        connect_fee_micros=ctx.money(node, "connect_fee", where),
        min_duration=ctx.integer(node, "min_duration", where, 0),
        free_seconds=ctx.integer(node, "free_seconds", where, 0),
        max_cost_micros=mc,
        charge_unanswered=ctx.boolean(node, "charge_unanswered", where),
        rounding=ctx.rounding(node.get("rounding"), where + ".rounding", rounding),
        schedule=sched,
        max_rate_per_min_micros=max_per_min,
    )
    return dest, prefixes, side, tuple(conds)


def _merge(base: LDict, child: LDict) -> LDict:
    """``extends``: child keys win; named collections merge by name, a null removes one."""
    out = LDict(base, line=child.line)
    out.key_lines = dict(base.key_lines)
    for k, v in child.items():
        if k in ("destinations", "schedules", "services") and isinstance(v, dict) and isinstance(base.get(k), dict):
            m = LDict(base[k], line=v.line if isinstance(v, LDict) else None)
            m.key_lines = dict(getattr(base[k], "key_lines", {}))
            for name, item in v.items():
                if item is None:
                    m.pop(name, None)
                else:
                    m[name] = item
                    m.key_lines[name] = getattr(v, "key_lines", {}).get(name, child.line)
            out[k] = m
        else:
            out[k] = v
        out.key_lines[k] = child.key_lines.get(k, child.line)
    out.pop("extends", None)
    return out


def _index_rank(conds: tuple) -> tuple:
    return (-len(conds), tuple(CONDITION_KEYS.index(k) for k, _ in conds))


def _build_version(ctx: _Ctx, tz: str, vid: str, eff_ms: int, node: LDict, where: str) -> Version:
    rounding = ctx.rounding(node.get("rounding"), where + ".rounding", RoundingRule())
    schedules: dict[str, Schedule] = {}
    raw_s = node.get("schedules") or {}
    ctx.keys(raw_s, set(raw_s) if isinstance(raw_s, dict) else set(), where + ".schedules")
    for sname, snode in raw_s.items():
        schedules[sname] = _build_schedule(ctx, sname, snode, tz, f"{where}.schedules.{sname}")
    services: dict[str, int] = {}
    raw_sv = node.get("services") or {}
    ctx.keys(raw_sv, set(raw_sv) if isinstance(raw_sv, dict) else set(), where + ".services")
    for sv in raw_sv:
        if sv == "voice":
            ctx.fail(raw_sv, sv, where + ".services", "voice is priced by destinations, not as a flat service")
        services[sv] = ctx.money(raw_sv, sv, f"{where}.services.{sv}", None)
        if services[sv] is None:
            ctx.fail(raw_sv, sv, where + ".services", f"service {sv!r} needs a price")
    raw_d = node.get("destinations") or {}
    ctx.keys(raw_d, set(raw_d) if isinstance(raw_d, dict) else set(), where + ".destinations")
    if not raw_d and not services:
        ctx.fail(node, "destinations", where, "a version needs at least one destination or service")
    idx: dict[tuple[str, tuple], PrefixIndex] = {}
    for dname, dnode in raw_d.items():
        w = f"{where}.destinations.{dname}"
        if not isinstance(dname, str):
            ctx.fail(raw_d, dname, w, f"destination name {dname!r} must be a string")
        dest, prefixes, side, conds = _build_destination(ctx, dname, dnode, w, schedules, rounding)
        pi = idx.setdefault((side, conds), PrefixIndex())
        for p in prefixes:
            try:
                pi.add(p, dest, label=dname)
            except DuplicatePrefix as e:
                ctx.fail(dnode, "prefixes", w, f"{e} (same applies_to and conditions): a prefix must name one destination")
    by_side: dict[str, tuple] = {}
    for (side, conds), pi in sorted(idx.items(), key=lambda kv: (kv[0][0], _index_rank(kv[0][1]))):
        by_side[side] = by_side.get(side, ()) + ((conds, pi),)
    return Version(vid, eff_ms, by_side, services, rounding, _build_extras(ctx, node, where, rounding))


def _fraction(ctx: _Ctx, node: dict, key: str, where: str) -> Fraction:
    v = node.get(key)
    if isinstance(v, bool) or not isinstance(v, (str, int)):
        ctx.fail(node, key, where, f"{key} must be a quoted decimal string like \"0.9\", got {v!r}")
    try:
        d = Decimal(str(v).strip())
    except InvalidOperation:
        ctx.fail(node, key, where, f"{key} {v!r} is not a decimal number")
    if not d.is_finite() or d < 0:
        ctx.fail(node, key, where, f"{key} {v!r} must be a finite number >= 0")
    return Fraction(d)


def _build_extras(ctx: _Ctx, node: LDict, where: str, rounding: RoundingRule) -> Extras:
    tiers: list[VolumeTier] = []
    for i, t, w in ctx.each_mapping(node, "volume_tiers", where, _TIER_KEYS, "tier", "{from_minutes, coefficient}",
                                    non_empty=True):
        lo = ctx.integer(t, "from_minutes", w, None)
        if i == 0 and lo != 0:
            ctx.fail(t, "from_minutes", w, "the first tier must start at from_minutes: 0")
        if tiers and lo <= tiers[-1].from_minutes:
            ctx.fail(t, "from_minutes", w, f"from_minutes must increase ({lo} after {tiers[-1].from_minutes})")
        if "coefficient" not in t:
            ctx.fail(t, None, w, "coefficient is required")
        tiers.append(VolumeTier(lo, _fraction(ctx, t, "coefficient", w)))
    partners: list[Partner] = []
    for _i, c, w in ctx.each_mapping(node, "commission", where, _PARTNER_KEYS, "commission",
                                     "{partner, percent | plan}"):
        name = ctx.string(c, "partner", w)
        if any(p.partner == name for p in partners):
            ctx.fail(c, "partner", w, f"partner {name!r} appears twice")
        has_pct, has_plan = c.get("percent") is not None, c.get("plan") is not None
        if has_pct == has_plan:
            ctx.fail(c, None, w, "give exactly one of percent (of our cost) or plan (the partner's price list)")
        pct = _fraction(ctx, c, "percent", w) if has_pct else None
        plan = ctx.string(c, "plan", w) if has_plan else None
        label = ctx.string(c, "label", w, required=False) or f"commission:{name}"
        partners.append(Partner(name, pct, plan, label))
    sub = None
    raw_s = node.get("subscription")
    if raw_s is not None:
        w = f"{where}.subscription"
        ctx.keys(raw_s, _SUBSCRIPTION_KEYS, w)
        period = raw_s.get("period", MONTHLY)
        if period not in PERIOD_KINDS:
            ctx.fail(raw_s, "period", w, f"period {period!r} must be one of {', '.join(PERIOD_KINDS)}")
        items = raw_s.get("items")
        if not isinstance(items, dict) or not items:
            ctx.fail(raw_s, "items", w, "items must be a non-empty mapping {item: price}")
        sub = Subscription(period, tuple((str(k), ctx.money(items, k, f"{w}.items.{k}", None)) for k in items))
        for k, price in sub.items:
            if price is None:
                ctx.fail(items, k, w, f"item {k!r} needs a price")
    return Extras(tuple(tiers), tuple(partners), sub, rounding)


def build_book(raw: Any, path: str) -> TariffBook:
    """Validate a parsed tariff document (YAML shape) and build the book."""
    if isinstance(raw, dict) and "cgrates" in raw:   # imported CGRateS plan: rated with its semantics
        from streams.core.tariff.cgr_engine import build_cgrates_book
        return build_cgrates_book(raw, path)
    ctx = _Ctx(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("plans"), dict) or not raw["plans"]:
        ctx.fail(raw, "plans", "", "the file must have a non-empty 'plans' mapping")
    ctx.keys(raw, {"plans", "format", "description", "currency"}, "")
    from streams.core.currency import of_document
    try:
        currency = of_document(raw)
    except ValueError as exc:
        ctx.fail(raw, "currency", "", str(exc))
    plans: dict[str, Plan] = {}
    for pname, pnode in raw["plans"].items():
        where = f"plans.{pname}"
        if not isinstance(pname, str):
            ctx.fail(raw["plans"], pname, where, f"plan name {pname!r} must be a string")
        ctx.keys(pnode, _PLAN_KEYS, where)
        tz = ctx.string(pnode, "timezone", where)
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            ctx.fail(pnode, "timezone", where, f"unknown time zone {tz!r}")
        raw_versions = pnode.get("versions")
        if not isinstance(raw_versions, list) or not raw_versions:
            ctx.fail(pnode, "versions", where, "versions must be a non-empty list")
        seen: dict[str, LDict] = {}
        versions: list[Version] = []
        for i, vnode in enumerate(raw_versions):
            w = f"{where}.versions[{i}]"
            ctx.keys(vnode, _VERSION_KEYS, w)
            vid = vnode.get("version")
            if isinstance(vid, int) and not isinstance(vid, bool):
                vid = str(vid)
            if not isinstance(vid, str) or not vid:
                ctx.fail(vnode, "version", w, "version must be a non-empty string id")
            w = f"{where}.versions[{vid}]"
            if vid in seen:
                ctx.fail(vnode, "version", w, f"version {vid!r} appears twice")
            eff = _parse_instant(ctx, vnode, "effective_from", w)
            if versions and eff <= versions[-1].effective_from_ms:
                ctx.fail(vnode, "effective_from", w, f"versions must be listed in increasing effective_from order (after {versions[-1].version!r})")
            merged = vnode
            ext = vnode.get("extends")
            if ext is not None:
                if not isinstance(ext, str) or ext not in seen:
                    ctx.fail(vnode, "extends", w, f"extends {ext!r}: no earlier version with that id in plan {pname!r}")
                merged = _merge(seen[ext], vnode)
            seen[vid] = merged
            versions.append(_build_version(ctx, tz, vid, eff, merged, w))
        plans[pname] = Plan(pname, tz, versions, [v.effective_from_ms for v in versions], currency=currency)
    # A commission priced by another plan must name a plan of this same file: a live update
    # replaces files per plan, and a dangling reference would only fail at rating time.
    for pname, pnode in raw["plans"].items():
        for i, vnode in enumerate(pnode["versions"]):
            for j, c in enumerate(vnode.get("commission") or ()):
                ref = c.get("plan")
                if ref is not None and ref not in plans:
                    ctx.fail(c, "plan", f"plans.{pname}.versions[{i}].commission[{j}]",
                             f"commission plan {ref!r} is not a plan of this file")
    return TariffBook(plans, source=path)


# -- CSV -------------------------------------------------------------------------------------
_CSV_REQUIRED = ("plan", "version", "effective_from", "timezone", "destination", "prefixes",
                 "start", "rate", "unit", "increment")
_CSV_OPTIONAL = ("service", "applies_to", "called_type", "stage", "trunk", "operator_location",
                 "operator_dedicated", "connect_fee",
                 "min_duration", "free_seconds", "max_cost", "charge_unanswered", "rounding",
                 "decimals", "per_increment", "description")


def _csv_to_raw(text: str, path: str) -> LDict:
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = [c for c in _CSV_REQUIRED if c not in header]
    unknown = [c for c in header if c not in _CSV_REQUIRED + _CSV_OPTIONAL]
    if missing or unknown:
        raise TariffError(path, 1, f"CSV header: missing columns {missing}, unknown columns {unknown}")
    root = LDict(line=1)
    plans = LDict(line=1)
    root["plans"] = plans
    vnodes: dict[tuple[str, str], LDict] = {}

    def put(node: LDict, key: str, value: str, line: int, where: str) -> None:
        if value == "":
            return
        if key in node and node[key] != value:
            raise TariffError(path, line, f"{key} {value!r} differs from {node[key]!r} given on row {node.key_lines[key]}", where)
        if key not in node:
            node[key] = value
            node.key_lines[key] = line

    any_row = False
    for row in reader:
        line = reader.line_num
        if None in row:
            raise TariffError(path, line, "more cells than header columns")
        row = {k: (v or "").strip() for k, v in row.items()}
        if not any(row.values()):
            continue
        any_row = True
        pname, vid = row["plan"], row["version"]
        if not pname or not vid:
            raise TariffError(path, line, "plan and version are required on every row")
        if pname not in plans:
            plans[pname] = LDict(line=line)
            plans[pname]["versions"] = LList(line=line)
            plans.key_lines[pname] = line
        pnode = plans[pname]
        put(pnode, "timezone", row["timezone"], line, f"plans.{pname}")
        vkey = (pname, vid)
        if vkey not in vnodes:
            vnodes[vkey] = vnode = LDict(line=line)
            vnode["version"] = vid
            vnode.key_lines["version"] = line
            vnode["destinations"] = LDict(line=line)
            vnode["services"] = LDict(line=line)
            pnode["versions"].append(vnode)
            pnode["versions"].item_lines.append(line)
        vnode = vnodes[vkey]
        vw = f"plans.{pname}.versions[{vid}]"
        put(vnode, "effective_from", row["effective_from"], line, vw)
        if row.get("rounding") or row.get("decimals") or row.get("per_increment"):
            rnode = vnode.setdefault("rounding", LDict(line=line))
            vnode.key_lines.setdefault("rounding", line)
            put(rnode, "method", row.get("rounding", ""), line, vw)
            put(rnode, "decimals", row.get("decimals", ""), line, vw)
            put(rnode, "per_increment", row.get("per_increment", ""), line, vw)
        service = row.get("service", "")
        if service and service != "voice":
            put(vnode["services"], service, row["rate"], line, vw + ".services")
            continue
        dname = row["destination"]
        if not dname:
            raise TariffError(path, line, "destination is required on a voice row", vw)
        dests = vnode["destinations"]
        if dname not in dests:
            dests[dname] = LDict(line=line)
            dests.key_lines[dname] = line
            dests[dname]["groups"] = LList(line=line)
        dnode = dests[dname]
        dw = f"{vw}.destinations.{dname}"
        for k in ("prefixes", "applies_to", "connect_fee", "min_duration", "free_seconds",
                  "max_cost", "charge_unanswered"):
            put(dnode, k, row.get(k, ""), line, dw)
        for k in CONDITION_KEYS:
            if row.get(k):
                when = dnode.setdefault("when", LDict(line=line))
                put(when, k, row[k], line, dw)
        g = LDict(line=line)
        for k in ("start", "rate", "unit", "increment"):
            if row[k] != "":
                g[k] = row[k]
                g.key_lines[k] = line
        groups = dnode["groups"]
        groups.append(g)
        groups.item_lines.append(line)
    if not any_row:
        raise TariffError(path, None, "the CSV file has no rows")
    # Rows of one destination may come in any order; groups are ordered by their start.
    for vnode in vnodes.values():
        for dnode in vnode["destinations"].values():
            gl: LList = dnode["groups"]
            pairs = sorted(zip(gl, gl.item_lines), key=lambda p: _start_key(p[0]))
            gl[:] = [p[0] for p in pairs]
            gl.item_lines = [p[1] for p in pairs]
        if not vnode["services"]:
            del vnode["services"]
    return root


def _start_key(g: dict) -> int:
    s = g.get("start", "0")
    return int(s) if isinstance(s, str) and s.isdigit() else -1


def parse_tariff_text(text: str, path: str, fmt: str) -> TariffBook:
    if fmt == "csv":
        return build_book(_csv_to_raw(text, path), path)
    try:
        raw = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader subclass
    except _DupKey as e:
        raise TariffError(path, e.line, f"key {e.key!r} appears twice in one mapping") from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        raise TariffError(path, mark.line + 1 if mark else None, f"not valid YAML: {e.problem or e}") from None
    except yaml.YAMLError as e:
        raise TariffError(path, None, f"not valid YAML: {e}") from None
    return build_book(raw, path)


def load_tariff_book(path: str | Path) -> TariffBook:
    """Load a tariff from a ``.yaml``/``.yml`` or ``.csv`` file. Raises TariffError."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise TariffError(str(p), None, f"cannot read: {e}") from None
    fmt = "csv" if p.suffix.lower() == ".csv" else "yaml"
    return parse_tariff_text(text, str(p), fmt)


def default_tariff_path() -> Path:
    return Path(__file__).resolve().parents[2] / "data" / "tariff_default.yaml"


__all__ = ["load_tariff_book", "parse_tariff_text", "build_book", "default_tariff_path", "INBOUND_TOLL_FREE"]
