"""Import a CGRateS tariff plan (its documented CSV files) into the cdrflow tariff model.

Written from the public description of the CSV layout only (no CGRateS code or data). Pure:
:func:`import_cgrates` takes the file texts; :func:`import_cgrates_dir` reads a directory.
The result is a YAML-shaped document (:func:`to_yaml`) that the normal loader validates, so an
imported tariff obeys every rule of a hand-written one.

Files and columns (by position; blank lines and lines starting with ``#`` are skipped, which
covers CGRateS's commented header line):

* ``Destinations.csv``: ID, Prefix - one prefix per row; a leading ``+`` is dropped.
* ``Rates.csv``: ID, ConnectFee, Rate, RateUnit, RateIncrement, GroupIntervalStart - one
  rate group per row; Rate is the price per RateUnit.
* ``DestinationRates.csv``: ID, DestinationsID, RatesTag, RoundingMethod, RoundingDecimals,
  MaxCost, MaxCostStrategy.
* ``Timings.csv``: ID, Years, Months, MonthDays, WeekDays, Time.
* ``RatingPlans.csv``: ID, DestinationRatesId, TimingTag, Weight.
* ``RatingProfiles.csv``: Tenant, Category, Subject, ActivationTime, RatingPlanId,
  RatesFallbackSubject (an older leading Direction column ``*out`` is accepted).

Mapping
    * Each rating profile (Tenant, Category, Subject) becomes a plan named
      ``Tenant:Category:Subject`` (``rename`` maps it to another name). Its rows become the
      plan's versions, ordered by ActivationTime (``effective_from``); a version's id is the
      RatingPlanId. A naive ActivationTime is read in the importer's ``timezone``.
    * Each destination reachable from the rating plan becomes a destination named by its ID,
      with its prefixes; ``DestinationsID`` ``*any`` becomes the catch-all prefixes 0-9.
    * Durations: Go-style ``60s``, ``1m``, ``1m30s``, ``1h``, and ``0``. Sub-second values
      and bare numbers other than 0 are refused: cdrflow counts whole seconds, and a bare
      number's unit is ambiguous.
    * Rounding: ``*up`` -> up, ``*down`` -> down, ``*middle`` -> half_even (APPROXIMATION:
      CGRateS rounds an exact tie away from zero, cdrflow to even; results differ only when
      the unrounded cost is exactly half a step). RoundingDecimals 0..6. Rounding applies once
      per call.
    * MaxCost > 0 becomes ``max_cost`` for both ``*free`` and ``*disconnect`` (rating happens
      after the call; disconnecting at the cap is the call controller's job).
    * Timings: a timing covers, on its WeekDays (``*any`` = every day; 0 = Sunday as in
      CGRateS), the local time from its Time to the end of the day. At each instant the
      covering entry with the highest Weight wins; at equal Weight the one that started
      latest wins (so "off-peak from 00:00, peak from 08:00, off-peak from 19:00" reads as
      intended). ``*asap`` / ``*any`` Time means 00:00:00. Times must be whole minutes.
      When more than one timing wins somewhere in the week, the destination gets a schedule
      whose periods are the timing IDs; the rates behind those timings must then share
      group starts, units, increments, connect fee, rounding and max cost, because a cdrflow
      call's increments never depend on the time of day.

Refused (TariffError naming the file, row and problem): Years/Months/MonthDays other than
``*any`` (dated timings), RatesFallbackSubject, a destination uncovered at some time of the
week, two entries with the same timing and weight for one destination, a prefix in two
destinations of one rating plan, prices with more than 6 decimals, unknown references.
"""
from __future__ import annotations

import copy
import csv
import io
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from streams.core.money import parse_money
from streams.core.tariff.model import TariffError
from streams.core.tariff.schedule import DAY_NAMES

DESTINATIONS = "Destinations.csv"
RATES = "Rates.csv"
DESTINATION_RATES = "DestinationRates.csv"
TIMINGS = "Timings.csv"
RATING_PLANS = "RatingPlans.csv"
RATING_PROFILES = "RatingProfiles.csv"
FILES = (DESTINATIONS, RATES, DESTINATION_RATES, TIMINGS, RATING_PLANS, RATING_PROFILES)

_ROUNDING = {"*up": "up", "*down": "down", "*middle": "half_even"}
_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?$")
_ANY = ("", "*any")


class _Files:
    def __init__(self, texts: Mapping[str, str], base: str):
        self.texts, self.base = texts, base

    def path(self, name: str) -> str:
        return f"{self.base}/{name}" if self.base else name

    def rows(self, name: str, ncols: int, required: bool = True) -> list[tuple[int, list[str]]]:
        """(line, cells) of the data rows; short rows are padded, long ones must be empty past ncols."""
        text = self.texts.get(name)
        if text is None:
            if required:
                raise TariffError(self.path(name), None, "file is missing from the tariff plan directory")
            return []
        out = []
        reader = csv.reader(io.StringIO(text))
        for cells in reader:
            line = reader.line_num
            cells = [c.strip() for c in cells]
            if not any(cells) or cells[0].startswith("#"):
                continue
            out.append((line, cells))
        return out

    def fail(self, name: str, line: int | None, problem: str) -> None:
        raise TariffError(self.path(name), line, problem)


def parse_duration(text: str) -> int | None:
    """Go-style duration text -> whole seconds, or None when not a supported duration."""
    t = text.strip()
    if t in ("0", "0s"):
        return 0
    m = _DURATION.match(t)
    if not t or m is None or not any(m.groups()):
        return None
    h, mi, s = (int(g) if g else 0 for g in m.groups())
    return h * 3600 + mi * 60 + s


def _cells(f: _Files, name: str, line: int, cells: list[str], n: int) -> list[str]:
    if len(cells) > n and any(cells[n:]):
        f.fail(name, line, f"expected {n} columns, got {len(cells)}")
    return (cells + [""] * n)[:n]


def _money(f: _Files, name: str, line: int, col: str, text: str) -> str:
    try:
        if parse_money(text or "0") < 0:
            f.fail(name, line, f"{col} {text!r} is negative")
    except (ValueError, ArithmeticError) as e:
        f.fail(name, line, f"{col} {text!r} is not a valid price: {e}")
    return str(Decimal(text or "0"))


def _read(f: _Files) -> dict[str, Any]:
    dests: dict[str, list[tuple[int, str]]] = {}
    for line, c in f.rows(DESTINATIONS, 2):
        did, prefix = _cells(f, DESTINATIONS, line, c, 2)
        p = prefix[1:] if prefix.startswith("+") else prefix
        if not did or not (p.isascii() and p.isdigit()):
            f.fail(DESTINATIONS, line, f"need an ID and a digit prefix, got {did!r}, {prefix!r}")
        dests.setdefault(did, []).append((line, p))

    rates: dict[str, list[dict]] = {}
    for line, c in f.rows(RATES, 6):
        rid, fee, rate, unit, inc, start = _cells(f, RATES, line, c, 6)
        if not rid:
            f.fail(RATES, line, "ID is required")
        g: dict[str, Any] = {"line": line, "connect_fee": _money(f, RATES, line, "ConnectFee", fee),
                             "rate": _money(f, RATES, line, "Rate", rate)}
        for col, text, key, lo in (("RateUnit", unit, "unit", 1), ("RateIncrement", inc, "increment", 1),
                                   ("GroupIntervalStart", start or "0s", "start", 0)):
            secs = parse_duration(text)
            if secs is None:
                f.fail(RATES, line, f"{col} {text!r} is not a whole-second duration like 60s or 1m")
            if secs < lo:
                f.fail(RATES, line, f"{col} {text!r} must be at least {lo}s")
            g[key] = secs
        rates.setdefault(rid, []).append(g)
    for rid, groups in rates.items():
        groups.sort(key=lambda g: g["start"])
        if groups[0]["start"] != 0:
            f.fail(RATES, groups[0]["line"], f"rate {rid!r}: the first GroupIntervalStart must be 0s")
        for a, b in zip(groups, groups[1:]):
            if a["start"] == b["start"]:
                f.fail(RATES, b["line"], f"rate {rid!r}: two groups start at {b['start']}s")
            if a["connect_fee"] != b["connect_fee"]:
                f.fail(RATES, b["line"], f"rate {rid!r}: ConnectFee differs between its rows (row {a['line']})")

    drs: dict[str, list[dict]] = {}
    for line, c in f.rows(DESTINATION_RATES, 7):
        drid, did, rtag, rmeth, rdec, mcost, mstrat = _cells(f, DESTINATION_RATES, line, c, 7)
        if not drid:
            f.fail(DESTINATION_RATES, line, "ID is required")
        if did != "*any" and did not in dests:
            f.fail(DESTINATION_RATES, line, f"DestinationsID {did!r} is not in {DESTINATIONS}")
        if rtag not in rates:
            f.fail(DESTINATION_RATES, line, f"RatesTag {rtag!r} is not in {RATES}")
        method = _ROUNDING.get(rmeth or "*middle")
        if method is None:
            f.fail(DESTINATION_RATES, line, f"RoundingMethod {rmeth!r} must be *up, *down or *middle")
        if not (rdec or "4").isdigit() or int(rdec or "4") > 6:
            f.fail(DESTINATION_RATES, line, f"RoundingDecimals {rdec!r} must be 0..6 (cdrflow keeps micro-units)")
        cap = _money(f, DESTINATION_RATES, line, "MaxCost", mcost)
        if Decimal(cap) > 0 and mstrat not in ("*free", "*disconnect"):
            f.fail(DESTINATION_RATES, line, f"MaxCostStrategy {mstrat!r} must be *free or *disconnect")
        drs.setdefault(drid, []).append({
            "line": line, "dest": did, "rates": rtag,
            "rounding": (method, int(rdec or "4")), "max_cost": cap if Decimal(cap) > 0 else None})

    timings: dict[str, dict] = {}
    for line, c in f.rows(TIMINGS, 6):
        tid, years, months, mdays, wdays, tm = _cells(f, TIMINGS, line, c, 6)
        if not tid:
            f.fail(TIMINGS, line, "ID is required")
        if tid in timings:
            f.fail(TIMINGS, line, f"timing {tid!r} is defined twice")
        for col, v in (("Years", years), ("Months", months), ("MonthDays", mdays)):
            if v not in _ANY:
                f.fail(TIMINGS, line, f"{col} {v!r}: dated timings are not supported (only *any); "
                                      "use schedule holidays in a YAML tariff instead")
        if wdays in _ANY:
            days = frozenset(range(7))
        else:
            try:
                cg = [int(x) for x in wdays.split(";") if x.strip()]
            except ValueError:
                cg = [-1]
            if not cg or any(not 0 <= d <= 6 for d in cg):
                f.fail(TIMINGS, line, f"WeekDays {wdays!r} must be *any or 0..6 separated by ';' (0 = Sunday)")
            days = frozenset((d - 1) % 7 for d in cg)   # CGRateS 0=Sunday -> cdrflow 0=Monday
        if tm in ("", "*any", "*asap"):
            minute = 0
        else:
            mt = re.fullmatch(r"(\d{1,2}):(\d{2})(?::(\d{2}))?", tm)
            if mt is None or int(mt.group(1)) > 23 or int(mt.group(2)) > 59:
                f.fail(TIMINGS, line, f"Time {tm!r} must be HH:MM:SS")
            if mt.group(3) not in (None, "00"):
                f.fail(TIMINGS, line, f"Time {tm!r}: cdrflow schedules have minute resolution")
            minute = int(mt.group(1)) * 60 + int(mt.group(2))
        timings[tid] = {"line": line, "days": days, "minute": minute}

    rplans: dict[str, list[dict]] = {}
    for line, c in f.rows(RATING_PLANS, 4):
        rpid, drid, tid, weight = _cells(f, RATING_PLANS, line, c, 4)
        if not rpid:
            f.fail(RATING_PLANS, line, "ID is required")
        if drid not in drs:
            f.fail(RATING_PLANS, line, f"DestinationRatesId {drid!r} is not in {DESTINATION_RATES}")
        if tid not in timings:
            f.fail(RATING_PLANS, line, f"TimingTag {tid!r} is not in {TIMINGS}")
        try:
            w = Decimal(weight or "0")
        except InvalidOperation:
            f.fail(RATING_PLANS, line, f"Weight {weight!r} is not a number")
        rplans.setdefault(rpid, []).append({"line": line, "dr": drid, "timing": tid, "weight": w})

    profiles = []
    for line, c in f.rows(RATING_PROFILES, 6):
        if c and c[0] in ("*out", "*in"):
            if c[0] == "*in":
                f.fail(RATING_PROFILES, line, "Direction *in is not supported (cdrflow rates by applies_to)")
            c = c[1:]
            if len(c) > 6 and not any(c[6:]):
                c = c[:6]
        tenant, cat, subject, act, rpid, fallback = _cells(f, RATING_PROFILES, line, c, 6)
        if not (tenant and cat and subject):
            f.fail(RATING_PROFILES, line, "Tenant, Category and Subject are required")
        if rpid not in rplans:
            f.fail(RATING_PROFILES, line, f"RatingPlanId {rpid!r} is not in {RATING_PLANS}")
        if fallback:
            f.fail(RATING_PROFILES, line, f"RatesFallbackSubject {fallback!r} is not supported")
        profiles.append({"line": line, "key": (tenant, cat, subject), "act": act, "rp": rpid})
    if not profiles:
        f.fail(RATING_PROFILES, None, "no rating profiles: nothing would be priced")
    return {"dests": dests, "rates": rates, "drs": drs, "timings": timings, "rplans": rplans, "profiles": profiles}


def _week_winners(f: _Files, cands: list[dict], timings: dict, dest: str) -> list[list[tuple[int, int, dict]]]:
    """Per cdrflow weekday: [(from_minute, to_minute, winning candidate)], covering 0..1440."""
    week = []
    for d in range(7):
        here = [c for c in cands if d in timings[c["timing"]]["days"]]
        starts = sorted({timings[c["timing"]]["minute"] for c in here} | {0})
        segs: list[tuple[int, int, dict]] = []
        for i, s in enumerate(starts):
            end = starts[i + 1] if i + 1 < len(starts) else 1440
            live = [c for c in here if timings[c["timing"]]["minute"] <= s]
            if not live:
                f.fail(RATING_PLANS, cands[0]["line"],
                       f"destination {dest!r}: no timing covers {DAY_NAMES[d]} {s // 60:02d}:{s % 60:02d}")
            rank = lambda c: (c["weight"], timings[c["timing"]]["minute"])   # noqa: E731
            best = max(live, key=rank)
            tied = [c for c in live if rank(c) == rank(best) and c is not best]
            if tied:
                f.fail(RATING_PLANS, tied[0]["line"],
                       f"destination {dest!r}: timings {best['timing']!r} and {tied[0]['timing']!r} both start at "
                       f"{s // 60:02d}:{s % 60:02d} on {DAY_NAMES[d]} with weight {best['weight']}; give one a higher Weight")
            if segs and segs[-1][2] is best:
                segs[-1] = (segs[-1][0], end, best)
            else:
                segs.append((s, end, best))
        week.append(segs)
    return week


def _hhmm(m: int) -> str:
    return f"{m // 60:02d}:{m % 60:02d}"


def _convert_plan(f: _Files, rp_id: str, data: dict) -> dict:
    """One rating plan -> a version body {schedules, destinations} (YAML shape)."""
    timings, rates = data["timings"], data["rates"]
    by_dest: dict[str, list[dict]] = {}
    for entry in data["rplans"][rp_id]:
        for dr in data["drs"][entry["dr"]]:
            by_dest.setdefault(dr["dest"], []).append({**dr, "timing": entry["timing"], "weight": entry["weight"],
                                                      "line": entry["line"], "dr_line": dr["line"]})
    schedules: dict[str, dict] = {}
    sched_names: dict[str, str] = {}
    destinations: dict[str, dict] = {}
    owner: dict[str, str] = {}
    for dest, cands in by_dest.items():
        seen: dict[tuple, dict] = {}
        for c in cands:
            k = (c["timing"], c["weight"])
            if k in seen and (seen[k]["rates"], seen[k]["rounding"], seen[k]["max_cost"]) != (c["rates"], c["rounding"], c["max_cost"]):
                f.fail(RATING_PLANS, c["line"], f"rating plan {rp_id!r}: destination {dest!r} has two rates for timing "
                                                f"{c['timing']!r} at weight {c['weight']} (also row {seen[k]['line']})")
            seen[k] = c
        week = _week_winners(f, list(seen.values()), timings, dest)
        winners = {id(s[2]): s[2] for day in week for s in day}
        base = next(iter(winners.values()))

        def shape(c: dict) -> tuple:
            gs = rates[c["rates"]]
            return (tuple((g["start"], g["unit"], g["increment"]) for g in gs), gs[0]["connect_fee"],
                    c["rounding"], c["max_cost"])

        periods: dict[str, dict] = {}
        for w in winners.values():
            if shape(w) != shape(base):
                f.fail(DESTINATION_RATES, w["dr_line"],
                       f"rating plan {rp_id!r}, destination {dest!r}: rates {base['rates']!r} and {w['rates']!r} "
                       "differ in increments, connect fee, rounding or max cost by time of day; cdrflow prices "
                       "increments the same at any hour (only the price per unit may change)")
            if w["timing"] in periods and periods[w["timing"]] is not w:
                f.fail(RATING_PLANS, w["line"], f"timing {w['timing']!r} wins with two rates for {dest!r}")
            periods[w["timing"]] = w
        groups_src = rates[base["rates"]]
        node: dict[str, Any] = {}
        if dest == "*any":
            node["prefixes"] = [str(d) for d in range(10)]
            name = "any"
        else:
            node["prefixes"] = [p for _, p in data["dests"][dest]]
            name = dest
        for (line, p) in data["dests"].get(dest, []):
            if p in owner and owner[p] != name:
                f.fail(DESTINATIONS, line, f"rating plan {rp_id!r}: prefix {p!r} is in destinations {owner[p]!r} and {name!r}")
            owner[p] = name
        if len(periods) > 1:
            minutes: dict[str, int] = {}
            for day in week:
                for a, b, w in day:
                    minutes[w["timing"]] = minutes.get(w["timing"], 0) + b - a
            default = max(sorted(minutes), key=lambda t: minutes[t])   # the most-used period: fewest rules
            rules: dict[tuple[str, int, int], list[int]] = {}
            for d, day in enumerate(week):
                for a, b, w in day:
                    if w["timing"] != default:
                        rules.setdefault((w["timing"], a, b), []).append(d)
            sched = {"default": default, "rules": [
                {"period": t, "days": [DAY_NAMES[d] for d in days], "from": _hhmm(a), "to": _hhmm(b)}
                for (t, a, b), days in sorted(rules.items(), key=lambda kv: (kv[1][0], kv[0][1]))]}
            sig = repr(sched)
            if sig not in sched_names:
                sched_names[sig] = f"timings_{len(sched_names) + 1}"
                schedules[sched_names[sig]] = sched
            node["schedule"] = sched_names[sig]
            node["groups"] = [{"start": g["start"], "rate": {t: rates[w["rates"]][i]["rate"] for t, w in periods.items()},
                               "unit": g["unit"], "increment": g["increment"]} for i, g in enumerate(groups_src)]
        else:
            node["groups"] = [{"start": g["start"], "rate": g["rate"], "unit": g["unit"], "increment": g["increment"]}
                              for g in groups_src]
        if Decimal(groups_src[0]["connect_fee"]) > 0:
            node["connect_fee"] = groups_src[0]["connect_fee"]
        if base["max_cost"] is not None:
            node["max_cost"] = base["max_cost"]
        node["rounding"] = {"method": base["rounding"][0], "decimals": base["rounding"][1]}
        destinations[name] = node
    out: dict[str, Any] = {}
    if schedules:
        out["schedules"] = schedules
    out["destinations"] = destinations
    return out


def import_cgrates(texts: Mapping[str, str], base: str = "", timezone: str = "UTC",
                   rename: Mapping[str, str] | None = None) -> dict:
    """CGRateS CSV texts (by file name) -> a cdrflow tariff document (YAML-shaped dict)."""
    f = _Files(texts, base)
    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise TariffError(base or "cgrates", None, f"unknown time zone {timezone!r}") from None
    data = _read(f)
    rename = dict(rename or {})
    converted: dict[str, dict] = {}
    plans: dict[str, dict] = {}
    by_key: dict[tuple, list[dict]] = {}
    for p in data["profiles"]:
        act = p["act"]
        try:
            when = datetime.fromisoformat(act)
        except ValueError:
            f.fail(RATING_PROFILES, p["line"], f"ActivationTime {act!r} is not an RFC 3339 date-time")
        if when.tzinfo is None:
            when = when.replace(tzinfo=tz)
        p["when"] = when
        by_key.setdefault(p["key"], []).append(p)
    for key, rows in by_key.items():
        name = rename.get(":".join(key), ":".join(key))
        if name in plans:
            f.fail(RATING_PROFILES, rows[0]["line"], f"two profiles map to plan name {name!r}")
        rows.sort(key=lambda r: r["when"])
        versions = []
        ids: set[str] = set()
        for a, b in zip(rows, rows[1:]):
            if a["when"] == b["when"]:
                f.fail(RATING_PROFILES, b["line"], f"profile {name!r} activates two rating plans at {b['act']} (also row {a['line']})")
        for r in rows:
            if r["rp"] not in converted:
                converted[r["rp"]] = _convert_plan(f, r["rp"], data)
            vid = r["rp"] if r["rp"] not in ids else f"{r['rp']}@{r['when'].isoformat()}"
            ids.add(vid)
            versions.append({"version": vid, "effective_from": r["when"].isoformat(),
                             **copy.deepcopy(converted[r["rp"]])})
        plans[name] = {"description": f"imported from CGRateS rating profile {':'.join(key)}",
                       "timezone": timezone, "versions": versions}
    return {"format": "cdrflow-tariff/1", "description": f"imported from CGRateS tariff plan {base or ''}".strip(),
            "plans": plans}


def import_cgrates_dir(path: str | Path, timezone: str = "UTC", rename: Mapping[str, str] | None = None) -> dict:
    """Read the six CSV files of a CGRateS tariff plan directory and import them."""
    d = Path(path)
    if not d.is_dir():
        raise TariffError(str(d), None, "not a directory")
    texts = {}
    for name in FILES:
        p = d / name
        if p.exists():
            try:
                texts[name] = p.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                raise TariffError(str(p), None, f"cannot read: {e}") from None
    return import_cgrates(texts, str(d), timezone, rename)


def to_yaml(doc: dict) -> str:
    """The document as a cdrflow YAML tariff file. Strings stay quoted where YAML would retype them."""
    header = "# Generated by `cdrflow tariffs import-cgrates`; rules: streams/core/tariff/model.py.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=None, width=120)


__all__ = ["import_cgrates", "import_cgrates_dir", "to_yaml", "parse_duration", "FILES"]
