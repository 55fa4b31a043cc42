"""Import a CGRateS tariff plan directory (its CSV files) into cdrflow, unchanged in meaning.

The result is a YAML document with a ``cgrates:`` section that keeps CGRateS's own model
(destinations, rates, timings, destination rates, rating plans, rating profiles); the loader
turns it into plans rated by :mod:`streams.core.tariff.cgr_engine`, which reproduces CGRateS's
rating semantics (cited there, file and line). Pure: :func:`import_cgrates` takes the file
texts; :func:`import_cgrates_dir` reads a directory. No CGRateS code or data is used.

Files and columns (by position; blank lines and lines starting with ``#`` are skipped):

* ``Destinations.csv``: ID, Prefix - any text; a leading ``+`` is ignored when matching.
* ``Rates.csv``: ID, ConnectFee, Rate, RateUnit, RateIncrement, GroupIntervalStart. Durations
  are Go durations (``60s``, ``1m30s``, ``500ms``) or bare integers read as nanoseconds, as
  CGRateS does (utils/coreutils.go:371-382); 0 / empty unit or increment means 1 s
  (engine/rateinterval.go:390-395). A rate's connect fee is its first row's
  (engine/model_helpers.go:470); groups need not start at 0.
* ``DestinationRates.csv``: ID, DestinationsID (or ``*any``), RatesTag, RoundingMethod,
  RoundingDecimals, MaxCost, MaxCostStrategy (``*free`` caps the cost; ``*disconnect`` does not).
* ``Timings.csv`` (optional; ``*any`` is built in: engine/tpreader.go:2586-2595): ID, Years,
  Months, MonthDays, WeekDays (0 or 7 = Sunday), Time - lists ``;``-separated or ``*any``.
* ``RatingPlans.csv``: ID, DestinationRatesId, TimingTag, Weight. Every rating plan is
  converted, named by a profile or not.
* ``RatingProfiles.csv``: [Direction,] Tenant, Category, Subject, ActivationTime, RatingPlanId,
  RatesFallbackSubject (``;``-separated subjects). Each Tenant:Category:Subject becomes a plan
  of that name (``rename`` maps it to another); a naive ActivationTime is read in ``timezone``.

Refused, naming file, row and reason: unknown references, malformed numbers, durations or
dates, negative prices, connect fees or max costs with more than 6 decimals, RoundingDecimals
above 6, and two rows of one rate with the same GroupIntervalStart.
"""
from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from streams.core.tariff.model import TariffError

DESTINATIONS = "Destinations.csv"
RATES = "Rates.csv"
DESTINATION_RATES = "DestinationRates.csv"
TIMINGS = "Timings.csv"
RATING_PLANS = "RatingPlans.csv"
RATING_PROFILES = "RatingProfiles.csv"
FILES = (DESTINATIONS, RATES, DESTINATION_RATES, TIMINGS, RATING_PLANS, RATING_PROFILES)

_METHODS = ("*up", "*down", "*middle", "")
_STRATEGIES = ("", "*free", "*disconnect")
_UNITS_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10 ** 9, "m": 60 * 10 ** 9, "h": 3600 * 10 ** 9}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_ANY = ("", "*any")


class _Files:
    def __init__(self, texts: Mapping[str, str], base: str):
        self.texts, self.base = texts, base

    def path(self, name: str) -> str:
        return f"{self.base}/{name}" if self.base else name

    def rows(self, name: str, ncols: int, required: bool = True) -> list[tuple[int, list[str]]]:
        """(line, cells) of the data rows, padded to ncols; extra non-empty cells are refused."""
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
    """CGRateS duration text -> nanoseconds: Go units (``1m30s``, ``500ms``) or a bare integer
    of nanoseconds; empty is 0. None when not a duration."""
    t = text.strip()
    if t == "":
        return 0
    if t.isdigit():
        return int(t)
    pos, total = 0, Decimal(0)
    for m in _PART.finditer(t):
        if m.start() != pos:
            return None
        total += Decimal(m.group(1)) * _UNITS_NS[m.group(2)]
        pos = m.end()
    if pos != len(t) or pos == 0:
        return None
    return int(total)   # Go truncates fractions of a nanosecond


def _cells(f: _Files, name: str, line: int, cells: list[str], n: int) -> list[str]:
    if len(cells) > n and any(cells[n:]):
        f.fail(name, line, f"expected {n} columns, got {len(cells)}")
    return (cells + [""] * n)[:n]


def _number(f: _Files, name: str, line: int, col: str, text: str, money: bool) -> str:
    try:
        d = Decimal(text or "0")
    except InvalidOperation:
        f.fail(name, line, f"{col} {text!r} is not a number")
    if not d.is_finite() or d < 0:
        f.fail(name, line, f"{col} {text!r} must be a number >= 0")
    if money and d != d.quantize(Decimal("0.000001"), rounding="ROUND_DOWN"):
        f.fail(name, line, f"{col} {text!r} has more than 6 decimals (cdrflow keeps micro-units)")
    return str(d)


def _list(f: _Files, line: int, col: str, text: str, lo: int, hi: int) -> list[int]:
    if text in _ANY:
        return []
    try:
        vals = [int(x) for x in text.split(";") if x.strip()]
    except ValueError:
        vals = []
    if not vals or any(not lo <= v <= hi for v in vals):
        f.fail(TIMINGS, line, f"{col} {text!r} must be *any or numbers {lo}..{hi} separated by ';'")
    return sorted(set(vals))


def _read(f: _Files, timezone: str) -> dict[str, Any]:
    dests: dict[str, list[str]] = {}
    for line, c in f.rows(DESTINATIONS, 2):
        did, prefix = _cells(f, DESTINATIONS, line, c, 2)
        if not did or not prefix.lstrip("+"):
            f.fail(DESTINATIONS, line, f"need an ID and a prefix, got {did!r}, {prefix!r}")
        if prefix not in dests.setdefault(did, []):
            dests[did].append(prefix)

    rates: dict[str, list[dict]] = {}
    lines: dict[str, dict[int, int]] = {}
    for line, c in f.rows(RATES, 6):
        rid, fee, rate, unit, inc, start = _cells(f, RATES, line, c, 6)
        if not rid:
            f.fail(RATES, line, "ID is required")
        g: dict[str, Any] = {"connect_fee": _number(f, RATES, line, "ConnectFee", fee, True),
                             "rate": _number(f, RATES, line, "Rate", rate, False)}
        for col, text, key in (("RateUnit", unit, "unit_ns"), ("RateIncrement", inc, "increment_ns"),
                               ("GroupIntervalStart", start, "start_ns")):
            ns = parse_duration(text)
            if ns is None:
                f.fail(RATES, line, f"{col} {text!r} is not a duration (60s, 1m30s, 500ms, or integer nanoseconds)")
            g[key] = ns
        seen = lines.setdefault(rid, {})
        if g["start_ns"] in seen:
            f.fail(RATES, line, f"rate {rid!r}: GroupIntervalStart {start!r} also on row {seen[g['start_ns']]}")
        seen[g["start_ns"]] = line
        rates.setdefault(rid, []).append(g)

    drs: dict[str, list[dict]] = {}
    for line, c in f.rows(DESTINATION_RATES, 7):
        drid, did, rtag, rmeth, rdec, mcost, mstrat = _cells(f, DESTINATION_RATES, line, c, 7)
        if not drid:
            f.fail(DESTINATION_RATES, line, "ID is required")
        if did != "*any" and did not in dests:
            f.fail(DESTINATION_RATES, line, f"DestinationsID {did!r} is not in {DESTINATIONS}")
        if rtag not in rates:
            f.fail(DESTINATION_RATES, line, f"RatesTag {rtag!r} is not in {RATES}")
        if rmeth not in _METHODS:
            f.fail(DESTINATION_RATES, line, f"RoundingMethod {rmeth!r} must be *up, *down or *middle")
        if not (rdec or "0").isdigit() or int(rdec or "0") > 6:
            f.fail(DESTINATION_RATES, line, f"RoundingDecimals {rdec!r} must be 0..6 (cdrflow keeps micro-units)")
        if mstrat not in _STRATEGIES:
            f.fail(DESTINATION_RATES, line, f"MaxCostStrategy {mstrat!r} must be *free, *disconnect or empty")
        drs.setdefault(drid, []).append({
            "destination": did, "rates": rtag, "method": rmeth, "decimals": int(rdec or "0"),
            "max_cost": _number(f, DESTINATION_RATES, line, "MaxCost", mcost, True), "strategy": mstrat})

    timings: dict[str, dict] = {}
    for line, c in f.rows(TIMINGS, 6, required=False):
        tid, years, months, mdays, wdays, tm = _cells(f, TIMINGS, line, c, 6)
        if not tid:
            f.fail(TIMINGS, line, "ID is required")
        if tid in timings:
            f.fail(TIMINGS, line, f"timing {tid!r} is defined twice")
        if tm in ("", "*any", "*asap"):
            secs = 0
        else:
            mt = re.fullmatch(r"(\d{1,2}):(\d{2}):(\d{2})", tm)
            if mt is None or int(mt.group(1)) > 23 or int(mt.group(2)) > 59 or int(mt.group(3)) > 59:
                f.fail(TIMINGS, line, f"Time {tm!r} must be HH:MM:SS")
            secs = int(mt.group(1)) * 3600 + int(mt.group(2)) * 60 + int(mt.group(3))
        timings[tid] = {"years": _list(f, line, "Years", years, 1, 9999),
                        "months": _list(f, line, "Months", months, 1, 12),
                        "month_days": _list(f, line, "MonthDays", mdays, 1, 31),
                        "week_days": sorted({d % 7 for d in _list(f, line, "WeekDays", wdays, 0, 7)}),
                        "start_s": secs}

    rplans: dict[str, list[dict]] = {}
    for line, c in f.rows(RATING_PLANS, 4):
        rpid, drid, tid, weight = _cells(f, RATING_PLANS, line, c, 4)
        if not rpid:
            f.fail(RATING_PLANS, line, "ID is required")
        if drid not in drs:
            f.fail(RATING_PLANS, line, f"DestinationRatesId {drid!r} is not in {DESTINATION_RATES}")
        if tid not in timings and tid not in ("*any", "*asap"):
            f.fail(RATING_PLANS, line, f"TimingTag {tid!r} is not in {TIMINGS} (nor built in: *any)")
        try:
            w = Decimal(weight or "0")
        except InvalidOperation:
            f.fail(RATING_PLANS, line, f"Weight {weight!r} is not a number")
        rplans.setdefault(rpid, []).append({"destination_rates": drid, "timing": "*any" if tid == "*asap" else tid,
                                            "weight": str(w)})

    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise TariffError(f.base or "cgrates", None, f"unknown time zone {timezone!r}") from None
    profiles: dict[str, list[dict]] = {}
    when_of: dict[tuple[str, datetime], int] = {}
    for line, c in f.rows(RATING_PROFILES, 6):
        if c and c[0] in ("*out", "*in"):
            if c[0] == "*in":
                f.fail(RATING_PROFILES, line, "Direction *in is not supported (CGRateS rates *out only)")
            c = c[1:]
        tenant, cat, subject, act, rpid, fallback = _cells(f, RATING_PROFILES, line, c, 6)
        if not (tenant and cat and subject):
            f.fail(RATING_PROFILES, line, "Tenant, Category and Subject are required")
        if ":" in tenant + cat + subject:
            f.fail(RATING_PROFILES, line, "Tenant, Category and Subject may not contain ':'")
        if rpid not in rplans:
            f.fail(RATING_PROFILES, line, f"RatingPlanId {rpid!r} is not in {RATING_PLANS}")
        try:
            when = datetime.fromisoformat(act.replace("Z", "+00:00"))
        except ValueError:
            f.fail(RATING_PROFILES, line, f"ActivationTime {act!r} is not an RFC 3339 date-time")
        if when.tzinfo is None:
            when = when.replace(tzinfo=tz)
        key = f"{tenant}:{cat}:{subject}"
        if (key, when) in when_of:
            f.fail(RATING_PROFILES, line, f"profile {key!r} activates two rating plans at {act} (also row {when_of[(key, when)]})")
        when_of[(key, when)] = line
        profiles.setdefault(key, []).append({
            "activation": when.isoformat(), "rating_plan": rpid,
            "fallback": [s.strip() for s in fallback.split(";") if s.strip()]})
    if not profiles:
        f.fail(RATING_PROFILES, None, "no rating profiles: nothing would be priced")
    for rows in profiles.values():
        rows.sort(key=lambda r: datetime.fromisoformat(r["activation"]))
    return {"destinations": dests, "rates": rates, "destination_rates": drs, "timings": timings,
            "rating_plans": rplans, "profiles": profiles}


def import_cgrates(texts: Mapping[str, str], base: str = "", timezone: str = "UTC",
                   rename: Mapping[str, str] | None = None, rounding_decimals: int = 5) -> dict:
    """CGRateS CSV texts (by file name) -> a cdrflow tariff document (YAML-shaped dict).

    ``rounding_decimals`` is CGRateS's general ``rounding_decimals`` (default 5,
    config/config_defaults.go:34): the precision of each increment's cost.
    """
    f = _Files(texts, base)
    if not 0 <= rounding_decimals <= 6:
        raise TariffError(base or "cgrates", None, "rounding decimals must be 0..6")
    data = _read(f, timezone)
    rename = dict(rename or {})
    for old in rename:
        if old not in data["profiles"]:
            raise TariffError(base or "cgrates", None, f"--rename {old!r}: no such rating profile (Tenant:Category:Subject)")
    plans: dict[str, str] = {}
    for key in data["profiles"]:
        name = rename.get(key, key)
        if name in plans:
            f.fail(RATING_PROFILES, None, f"two profiles map to plan name {name!r}")
        plans[name] = key
    return {"format": "cdrflow-tariff/1",
            "description": f"imported from CGRateS tariff plan {base or ''}".strip(),
            "cgrates": {"timezone": timezone, "rounding_decimals": rounding_decimals, "fallback_depth": 3,
                        **data, "plans": plans}}


def summary(doc: dict) -> str:
    """One line: what an import converted."""
    c = doc["cgrates"]
    return (f"{len(c['destinations'])} destinations, {len(c['rates'])} rates, "
            f"{len(c['destination_rates'])} destination rates, {len(c['timings'])} timings, "
            f"{len(c['rating_plans'])} rating plans, {len(c['profiles'])} rating profiles -> "
            f"{len(c['plans'])} plans")


def import_cgrates_dir(path: str | Path, timezone: str = "UTC", rename: Mapping[str, str] | None = None,
                       rounding_decimals: int = 5) -> dict:
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
    return import_cgrates(texts, str(d), timezone, rename, rounding_decimals)


def to_yaml(doc: dict) -> str:
    """The document as a cdrflow YAML tariff file. Strings stay quoted where YAML would retype them."""
    header = "# Generated by `cdrflow tariffs import-cgrates`; rated with CGRateS semantics: streams/core/tariff/cgr_engine.py.\n"
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=None, width=120)


__all__ = ["import_cgrates", "import_cgrates_dir", "to_yaml", "parse_duration", "summary", "FILES"]
