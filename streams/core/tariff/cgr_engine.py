"""Rating with CGRateS's semantics, for tariff plans imported by ``cdrflow tariffs import-cgrates``.

Written from a reading of CGRateS's source (cgrates/cgrates, commit 19463bdc, AGPL - no code
copied; the citations say where each rule is defined so a later engineer can check it):

Profile and destination choice
    * A cdrflow plan names one rating profile ``Tenant:Category:Subject``. When that profile
      does not exist the ``*any`` subject of the same tenant and category is used
      (engine/calldesc.go:249-268, LoadRatingPlans).
    * The profile's activations in force during the call are the last one at or before the
      start and every later one up to the end (engine/ratingprofile.go:124-138); the call is
      split at each activation instant (calldesc.go:402-418, timespans.go:643).
    * In each activated rating plan the destination is the longest prefix of the called number;
      when several destinations hold that prefix, the one with a timing active at the call's
      start and the highest weight wins; no match falls back to ``*any``
      (ratingprofile.go:213-262). A call that starts before the first activation, or whose
      plan has no match, tries the RatesFallbackSubject keys, ``;``-separated, recursively up
      to depth 3 (calldesc.go:272-335, config/config_defaults.go:388 ``fallback_depth``).
      What is still uncovered is refused (NO_TARIFF), as CGRateS answers "unauthorized
      destination" (calldesc.go:262-265).
    * Prefixes and numbers are compared without a leading ``+``; non-digit prefixes
      (``voicemail``) compare as text.

Time spans (voice)
    * Spans are cut at activations, at local midnights (timespans.go:660 SplitByDay), where the
      winning timing changes and at each GroupIntervalStart counted from the call's start
      (timespans.go:507-540). The winning timing at an instant: among the destination's
      rate intervals whose timing is active (years, months, month days, week days with 7 =
      Sunday (utils/dateseries.go:290-303), and local time at or after its Time; it runs to
      midnight: rateinterval.go:133-197), the highest Weight, then the latest start
      (ratingprofile.go:151-188). Time no timing covers is priced 0 (timespans.go:450-458).
      Time before a rate's first GroupIntervalStart is also priced 0: CGRateS finds no rate
      there (rateinterval.go:382-400 returns -1) and computes a meaningless figure.
    * Each span's duration is rounded up to a multiple of its increment; a span shorter than
      its increment grows to it and swallows or shortens the spans it then overlaps
      (calldesc.go:486-506, timespans.go:141-166). The charged time can therefore exceed the
      call and increments restart at each span.
    * Non-voice units (``*sms``, ``*data``, ...): the usage is a count of units read as
      nanoseconds (bare numbers in Rates.csv are nanoseconds: utils/coreutils.go:371-382);
      there is one span from the first rating info, not split by day or time of day
      (calldesc.go:401, timespans.go:541-546). The usage comes from the CDR key ``usage``
      (SMS count or bytes; default 1).

Money (two-level rounding)
    * A span's cost is rate x duration / unit rounded to the global rounding decimals with
      ``*middle`` (rateinterval.go:374-379); divided by its number of increments and rounded
      again the same way, the increment cost times the count is the span's cost
      (timespans.go:468-505). RateUnit and RateIncrement 0 mean 1 s (rateinterval.go:390-395).
    * The connect fee of the first span's rate (the first Rates.csv row of that rate ID:
      engine/model_helpers.go:470) is added once (calldesc.go:520-540, 583-587).
    * ``*free`` MaxCost: CGRateS's GetCost keeps a running "max cost so far" that adds the
      running total after each (compressed) span and caps the total once it reaches MaxCost
      (calldesc.go:541-552) - reproduced, quirk included. ``*disconnect`` does not cap a
      cost (it only limits an authorised session).
    * The total is rounded by the rate interval with the most RoundingDecimals among the spans
      (callcost.go:145-153, calldesc.go:555-558) with ``*up`` / ``*down`` / ``*middle`` (half
      up; utils/coreutils.go:165-195). Decimals 0 everywhere means no final rounding.

All arithmetic is exact (Fraction); ``cost_nanos`` is the total before the final rounding.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from typing import Any, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.core.reasons import Reason, RejectError
from streams.core.tariff.model import Extras, Plan, Rating, RoundingRule, TariffError, Version

NS = 1_000_000_000
MS_NS = 1_000_000
ANY = "*any"
METHODS = ("*up", "*down", "*middle")
STRATEGIES = ("", "*free", "*disconnect")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
DAY_NS = 86_400 * NS


def round_cgr(x: Fraction, decimals: int, method: str | None) -> Fraction:
    """utils.Round on exact numbers: *up ceils, *down floors, *middle rounds half up."""
    if not method:
        return x
    p = 10 ** decimals
    q = x * p
    if method == "*up":
        n = -((-q.numerator) // q.denominator)
    elif method == "*down":
        n = q.numerator // q.denominator
    else:
        n = (2 * q.numerator + q.denominator) // (2 * q.denominator)
    return Fraction(n, p)


def _nanos(x: Fraction) -> int:
    v = x * NS
    if v.denominator != 1:     # sub-nano only when a figure had more than 9 decimals
        return round(v)
    return int(v)


@dataclass(frozen=True, slots=True)
class Timing:
    id: str
    years: frozenset[int]
    months: frozenset[int]
    month_days: frozenset[int]
    week_days: frozenset[int]          # Go numbering: 0 = Sunday
    start_s: int                        # seconds after local midnight

    def active(self, t: datetime) -> bool:
        if self.years and t.year not in self.years:
            return False
        if self.months and t.month not in self.months:
            return False
        if self.month_days and t.day not in self.month_days:
            return False
        if self.week_days and (t.weekday() + 1) % 7 not in self.week_days:
            return False
        return t.hour * 3600 + t.minute * 60 + t.second >= self.start_s


@dataclass(frozen=True, slots=True)
class RateGroup:
    start_ns: int
    rate: Fraction
    unit_ns: int
    increment_ns: int
    # Derived once here so that rating a call is integer arithmetic only (see span_cost).
    rate_num: int = field(init=False, compare=False)
    rate_den: int = field(init=False, compare=False)
    rate_text: str = field(init=False, compare=False)
    rate_micros: int = field(init=False, compare=False)

    def __post_init__(self):
        r = self.rate
        object.__setattr__(self, "rate_num", r.numerator)
        object.__setattr__(self, "rate_den", r.denominator)
        object.__setattr__(self, "rate_text", str(Decimal(r.numerator) / Decimal(r.denominator)))
        object.__setattr__(self, "rate_micros", _nanos(r) // 1000)


@dataclass(frozen=True, slots=True)
class RateInterval:
    timing: Timing
    weight: Fraction
    connect_fee: Fraction
    groups: tuple[RateGroup, ...]       # sorted by start_ns
    method: str
    decimals: int
    max_cost: Fraction
    strategy: str
    rates_id: str
    fee_nanos: int = field(init=False, compare=False)
    max_cost_nanos: int = field(init=False, compare=False)

    def __post_init__(self):
        for name, v in (("fee_nanos", self.connect_fee), ("max_cost_nanos", self.max_cost)):
            n = v * NS
            if n.denominator != 1:
                raise ValueError(f"{v} has more than 9 decimals")
            object.__setattr__(self, name, int(n))

    def group_at(self, offset_ns: int) -> RateGroup | None:
        found = None
        for g in self.groups:
            if g.start_ns <= offset_ns:
                found = g
        return found


@dataclass(slots=True)
class _Info:
    act_ns: int
    from_ns: int
    subject: str = ""
    rating_plan: str = ""
    dest: str = ""
    prefix: str = ""
    intervals: tuple[RateInterval, ...] | None = None
    fallback: tuple[str, ...] = ()


@dataclass(slots=True)
class _Span:
    a: int
    b: int
    di: int                              # CGRateS DurationIndex: offset of the span's end
    info: _Info
    ri: RateInterval | None


@dataclass
class CgrData:
    """A whole imported CGRateS tariff plan, shared by the plans (profiles) made from it."""

    tz: ZoneInfo
    rounding_decimals: int
    fallback_depth: int
    reverse: dict[str, tuple[str, ...]]                  # prefix -> destination ids
    rating_plans: dict[str, dict[str, tuple[RateInterval, ...]]]
    profiles: dict[str, tuple[tuple[int, str, tuple[str, ...]], ...]]   # key -> (act_ns, rp, fallback keys)
    _midnights: dict = field(default_factory=dict)      # UTC day -> local days overlapping it
    _timings: dict = field(default_factory=dict)        # (local midnight, id(intervals)) -> table
    _act_times: dict = field(default_factory=dict)      # profile key -> activation instants
    _max_weight: dict = field(default_factory=dict)     # id(intervals) -> highest weight
    _p: int = 0                 # 10 ** rounding_decimals
    _to_nanos: int = 0          # 10 ** (9 - rounding_decimals)

    def __post_init__(self):
        self._p = 10 ** self.rounding_decimals
        self._to_nanos = 10 ** (9 - self.rounding_decimals)

    # -- rating profile resolution ---------------------------------------------------------
    def _match(self, rp: dict[str, tuple[RateInterval, ...]], number: str, at: datetime):
        if number in ("", ANY):
            return (ANY, ANY, rp[ANY]) if ANY in rp else None
        for k in range(len(number), 0, -1):
            p = number[:k]
            best = None
            for did in self.reverse.get(p, ()):
                ril = rp.get(did)
                if ril is None or not any(ri.timing.active(at) for ri in ril):
                    continue
                w = self._max_weight.get(id(ril))
                if w is None:
                    w = self._max_weight[id(ril)] = max(ri.weight for ri in ril)
                if best is None or w > best[0]:
                    best = (w, did, ril)
            if best is not None:
                return p, best[1], best[2]
        return (ANY, ANY, rp[ANY]) if ANY in rp else None

    def _profile_infos(self, key: str, number: str, start: int, end: int) -> list[_Info] | None:
        acts = self.profiles.get(key)
        if acts is None:
            return None
        times = self._act_times.get(key)
        if times is None:
            times = self._act_times[key] = [a[0] for a in acts]
        lo = max(bisect_right(times, start) - 1, 0)
        hi = len(acts)
        for i, t in enumerate(times):
            if t > end:
                hi = i
                break
        at = self.local(start)
        tenant_cat = key.rsplit(":", 1)[0]
        out: list[_Info] = []
        for index, (act, rp_id, fb) in enumerate(acts[lo:hi]):
            rp = self.rating_plans.get(rp_id)
            if rp is None:
                continue
            m = self._match(rp, number, at)
            if index == 0 and start < act:
                out.append(_Info(start, start, fallback=(f"{tenant_cat}:{ANY}",)))
            if m is not None:
                out.append(_Info(act, max(act, start), key, rp_id, m[1], m[0], m[2], fb))
            elif fb:
                out.append(_Info(act, max(act, start), fallback=fb))
        return out or None

    @staticmethod
    def _continuous(infos: list[_Info], start: int) -> bool:
        return bool(infos) and infos[0].act_ns <= start and all(i.intervals is not None for i in infos)

    def _infos(self, key: str, number: str, start: int, end: int, depth: int) -> list[_Info] | None:
        if depth > self.fallback_depth:
            return None
        infos = self._profile_infos(key, number, start, end)
        if infos is None:
            return None
        if not self._continuous(infos, start):
            depth += 1
            index = 0
            while index < len(infos):
                ri = infos[index]
                if ri.intervals is None and ri.fallback:
                    ts = start if index == 0 else ri.act_ns
                    te = end if index == len(infos) - 1 else infos[index + 1].act_ns
                    for fbk in ri.fallback:
                        sub = self._infos(fbk, number, ts, te, depth)
                        if sub is None:
                            continue
                        for new_index, new in enumerate(sub):
                            if new.intervals is None:
                                continue
                            new.from_ns = ts if new_index == 0 else max(new.act_ns, ts)
                            if new_index == 0:
                                infos[index] = new
                            else:
                                infos.insert(index + new_index, new)
                        if self._continuous(sub, ts):
                            break
                index += 1
        return infos

    def rating_infos(self, key: str, number: str, start: int, end: int) -> list[_Info]:
        infos = self._infos(key, number, start, end, 1)
        if infos is None and not key.endswith(":" + ANY):
            infos = self._infos(key.rsplit(":", 1)[0] + ":" + ANY, number, start, end, 1)
        if infos is None:
            raise RejectError(Reason.NO_TARIFF, f"CGRateS profile {key!r}: no rating plan for {number!r}")
        if not self._continuous(infos, start):
            raise RejectError(Reason.NO_TARIFF, f"CGRateS profile {key!r}: destination {number!r} not rated for the whole call")
        return infos

    def in_force(self, key: str, at_ns: int) -> tuple[str, str, tuple[str, ...]]:
        """(profile key used, rating plan id, fallback keys) of the activation in force at ``at_ns``."""
        for k in (key, key.rsplit(":", 1)[0] + ":" + ANY):
            acts = self.profiles.get(k)
            if acts:
                i = bisect_right([a[0] for a in acts], at_ns) - 1
                if i >= 0:
                    return k, acts[i][1], acts[i][2]
        raise RejectError(Reason.NO_TARIFF, f"CGRateS profile {key!r}: no rating plan activated at {at_ns // MS_NS} ms")

    def describe(self, key: str, at_ns: int):
        """What ``tariffs show`` lists: (rating plan id, fallback keys,
        [(destination id, prefixes, rate intervals by descending weight)]) in force at ``at_ns``."""
        _, rp_id, fb = self.in_force(key, at_ns)
        prefixes: dict[str, list[str]] = {}
        for p, dids in self.reverse.items():
            for d in dids:
                prefixes.setdefault(d, []).append(p)
        rows = []
        for did, ril in self.rating_plans.get(rp_id, {}).items():
            ordered = sorted(ril, key=lambda ri: (-ri.weight, ri.timing.start_s))
            rows.append((did, tuple(sorted(prefixes.get(did, ()))), tuple(ordered)))
        return rp_id, fb, rows

    # -- time -------------------------------------------------------------------------------
    def local(self, ns: int) -> datetime:
        return (_EPOCH + timedelta(microseconds=ns // 1000)).astimezone(self.tz)

    def _ns(self, d, seconds: int) -> int:
        # Wall-clock time of day (a DST day is 23 or 25 hours long).
        dt = datetime(d.year, d.month, d.day, seconds // 3600, seconds // 60 % 60, seconds % 60, tzinfo=self.tz)
        return ((dt - _EPOCH) // timedelta(microseconds=1)) * 1000

    def _day(self, ns: int) -> tuple[int, int, date]:
        """(local midnight, next local midnight, local date) of the day holding ``ns``.

        Cached per UTC day (the local days overlapping it, at most three), so a call's days are
        found without a time-zone conversion."""
        u = ns // DAY_NS
        days = self._midnights.get(u)
        if days is None:
            if len(self._midnights) > 8192:
                self._midnights.clear()
            first = self.local(u * DAY_NS).date()
            last = self.local(u * DAY_NS + DAY_NS - 1).date()
            days = []
            d = first
            while d <= last:
                nxt = d + timedelta(days=1)
                days.append((self._ns(d, 0), self._ns(nxt, 0), d))
                d = nxt
            self._midnights[u] = days = tuple(days)
        for day in days:
            if day[0] <= ns < day[1]:
                return day
        d = self.local(ns).date()    # not reached: the days above tile the UTC day
        return self._ns(d, 0), self._ns(d + timedelta(days=1), 0), d

    def _next_midnight(self, ns: int) -> int:
        return self._day(ns)[1]

    @staticmethod
    def _winner(ril: tuple[RateInterval, ...], at: datetime) -> RateInterval | None:
        best = None
        for ri in ril:
            if ri.timing.active(at) and (best is None or (ri.weight, ri.timing.start_s) > (best.weight, best.timing.start_s)):
                best = ri
        return best

    def _timing_table(self, day: tuple[int, int, date], ril: tuple[RateInterval, ...]):
        """(instants, winners) of one local day: the winning rate interval from each instant
        (local midnight and each timing's start) to the next; None on a day whose length is not
        24 h (DST change), where wall-clock time is not monotonic in the instant."""
        key = (day[0], id(ril))
        got = self._timings.get(key)
        if got is None:
            if len(self._timings) > 65536:
                self._timings.clear()
            if day[1] - day[0] != DAY_NS:
                got = False
            else:
                points = sorted({day[0]} | {self._ns(day[2], ri.timing.start_s) for ri in ril})
                got = (points, [self._winner(ril, self.local(x)) for x in points])
            self._timings[key] = got
        return got

    def _by_timing(self, a: int, b: int, ril: tuple[RateInterval, ...]) -> list[tuple[int, int, RateInterval | None]]:
        """[a, b) within one local day -> pieces with the winning rate interval."""
        day = self._day(a)
        table = self._timing_table(day, ril)
        if table:
            # On a 24 h day the wall clock grows with the instant, so the winner at ``a`` is the
            # one from the last table instant at or before it: the same answer as below.
            points, winners = table
            i = bisect_right(points, a) - 1
            out = [(a, b, winners[i])]
            for j in range(i + 1, len(points)):
                x = points[j]
                if x >= b:
                    break
                w = winners[j]
                if w is out[-1][2]:
                    continue
                out[-1] = (out[-1][0], x, out[-1][2])
                out.append((x, b, w))
            return out
        day = day[2]
        cuts = sorted({self._ns(day, ri.timing.start_s) for ri in ril} | {a})
        cuts = [c for c in cuts if a <= c < b] + [b]
        out: list[tuple[int, int, RateInterval | None]] = []
        for x, y in zip(cuts, cuts[1:]):
            w = self._winner(ril, self.local(x))
            if out and out[-1][2] is w:
                out[-1] = (out[-1][0], y, w)
            else:
                out.append((x, y, w))
        return out

    # -- spans ------------------------------------------------------------------------------
    def spans(self, infos: list[_Info], start: int, end: int, voice: bool) -> list[_Span]:
        pieces: list[tuple[int, int, _Info]] = []
        if voice:
            infos = sorted(infos, key=lambda i: i.from_ns)
            for i, info in enumerate(infos):
                a = max(info.from_ns, start)
                b = min(infos[i + 1].from_ns, end) if i + 1 < len(infos) else end
                while a < b:
                    m = min(self._next_midnight(a), b)
                    pieces.append((a, m, info))
                    a = m
        else:
            pieces.append((start, end, infos[0]))
        out: list[_Span] = []
        for a, b, info in pieces:
            assert info.intervals is not None
            if voice:
                parts = self._by_timing(a, b, info.intervals)
            else:
                parts = [(a, b, self._winner(info.intervals, self.local(a)))]
            for x, y, ri in parts:
                cuts = [x]
                if ri is not None:
                    cuts += sorted(start + g.start_ns for g in ri.groups if x < start + g.start_ns < y)
                cuts.append(y)
                for p, q in zip(cuts, cuts[1:]):
                    out.append(_Span(p, q, q - start, info, ri))
        # Round each span up to whole increments; a grown span overlaps its successors.
        i = 0
        while i < len(out):
            s = out[i]
            g = s.ri.group_at(max(s.di - (s.b - s.a), 0)) if s.ri is not None else None
            if g is not None:
                dur = s.b - s.a
                inc = g.increment_ns
                if inc < dur:
                    inc = dur if dur % inc == 0 else dur + inc - dur % inc
                if inc > dur:
                    s.b = s.a + inc
                    s.di += inc - dur
                    j = i + 1
                    while j < len(out) and out[j].b <= s.b:
                        j += 1
                    del out[i + 1:j]
                    if i + 1 < len(out) and out[i + 1].a < s.b:
                        out[i + 1].a = s.b
            i += 1
        return out

    def span_cost(self, s: _Span) -> tuple[RateGroup | None, int, int]:
        """(group, increments, cost in nanos) of one span: two-level rounding at the global
        decimals, in integers: with p = 10**decimals, round-half-up(x * p) is (2a + b) // 2b for
        x = a / b, which is exactly utils.Round(*middle) on the exact value."""
        if s.ri is None:
            return None, 0, 0
        g = s.ri.group_at(max(s.di - (s.b - s.a), 0))
        if g is None:
            return None, 0, 0
        dur = s.b - s.a
        p = self._p
        a = g.rate_num * dur * p
        b = g.rate_den * g.unit_ns
        whole = (2 * a + b) // (2 * b)              # span cost x p
        n = dur // g.increment_ns
        if n <= 0:
            return g, 0, whole * self._to_nanos
        each = (2 * whole + n) // (2 * n)           # one increment's cost x p
        return g, n, each * n * self._to_nanos


def rate_cgr(data: CgrData, key: str, cdr: Mapping[str, Any], plan: str) -> Rating:
    at_ms = cdr.get("answer_ms")
    if at_ms is None:
        at_ms = cdr["start_ms"]
    service = cdr.get("service") or "voice"
    voice = service == "voice"
    if voice:
        usage = (cdr.get("billsec_s") or 0) * NS if cdr.get("answered") else 0
    else:
        usage = int(cdr.get("usage") or 1)
    number = cdr.get("called_e164") or ""
    if number[:1] == "+":
        number = number[1:]
    start = at_ms * MS_NS
    end = start + usage
    infos = data.rating_infos(key, number, start, end)
    first = min(infos, key=lambda i: i.from_ns)
    if usage <= 0:
        # CGRateS prices a zero usage at 0 without a connect fee (calldesc.go:515-518).
        return Rating(0, 0, 0, 0, 0, 0, first.dest, first.prefix, plan, first.rating_plan, ())
    spans = data.spans(infos, start, end, voice)
    costs = [data.span_cost(s) for s in spans]
    ri0 = spans[0].ri
    fee = ri0.fee_nanos if ri0 is not None else 0
    # Money in integer nanos from here: every figure is exact there (the span costs have at most
    # 6 decimals, connect fee and MaxCost at most 9: checked when the plan is built).
    # GetCost's running max-cost check works on compressed spans (equal neighbours merged).
    merged: list[list] = []
    for s, (g, n, c) in zip(spans, costs):
        sig = (id(s.ri), id(s.info), g, n, c)
        if merged and merged[-1][0] == sig:
            merged[-1][2] += c
        else:
            merged.append([sig, s.ri, c])
    total = 0
    so_far = 0
    first_span = True
    for _, ri, c in merged:
        total += c + (fee if first_span else 0)
        first_span = False
        so_far += total
        if ri is not None and ri.strategy == "*free" and ri.max_cost_nanos > 0 and so_far >= ri.max_cost_nanos:
            total = ri.max_cost_nanos
            so_far = ri.max_cost_nanos
    decimals, method = 0, None
    for s in spans:
        if s.ri is not None and s.ri.decimals > decimals:
            decimals, method = s.ri.decimals, s.ri.method
    final_micros = _round_nanos_to_micros(total, decimals, method)
    g0 = costs[0][0]
    detail = tuple(
        (s.a // MS_NS, s.b - s.a, g.rate_text if g else "0",
         g.unit_ns if g else 0, g.increment_ns if g else 0, n, c)
        for s, (g, n, c) in zip(spans, costs))
    charged = spans[-1].b - start if voice else 0
    return Rating(
        total, final_micros, -(-charged // NS),
        g0.rate_micros if g0 else 0, (g0.unit_ns // NS if voice else 0) if g0 else 0,
        fee // 1000, first.dest, first.prefix, plan, first.rating_plan, detail)


def _round_nanos_to_micros(nanos: int, decimals: int, method: str | None) -> int:
    """round_cgr(nanos / 1e9, decimals, method) as micros (decimals <= 6; no method: truncate)."""
    if not method:
        return nanos // 1000
    u = 10 ** (9 - decimals)
    if method == "*up":
        n = -((-nanos) // u)
    elif method == "*down":
        n = nanos // u
    else:
        n = (2 * nanos + u) // (2 * u)
    return n * 10 ** (6 - decimals)


def _dec(n: int, scale: int) -> str:
    """Exact decimal text of n * 10**-scale, without trailing zeros ("0.25", "60", "-1.5")."""
    sign = "-" if n < 0 else ""
    q, r = divmod(abs(n), 10 ** scale)
    if not r:
        return f"{sign}{q}"
    return f"{sign}{q}." + f"{r:0{scale}d}".rstrip("0")


def spans_text(r: Rating, service: str = "voice") -> str:
    """The cost breakdown of a CGRateS-rated call as one compact text (``cdr_rated.spans``).

    One span per ``;``, eight ``,``-separated fields, CGRateS's timespans in cdrflow's units:
    ``start_ms,amount,rate,unit,increment,increments,fee,cost`` - start in UTC epoch ms;
    amount, unit and increment in seconds for voice and in usage units (SMS, bytes, ...)
    otherwise; ``rate`` the price per ``unit``; ``fee`` the connect fee (first span only, else
    0); ``cost`` the span's cost after the per-increment rounding and before the call's final
    rounding (so fee + the costs is the call's ``cost_nanos``, unless ``*free`` MaxCost capped
    it). Money is exact decimal text in the plan's currency. Empty for native plans, whose
    price is explained by the rate, increments and fee columns of the same row.
    """
    if not r.spans:
        return ""
    scale = 9 if service == "voice" else 0
    fee = _dec(r.connect_fee_micros, 6)
    parts = []
    for i, (start_ms, dur, rate, unit, inc, n, cost) in enumerate(r.spans):
        parts.append(f"{start_ms},{_dec(dur, scale)},{rate},{_dec(unit, scale)},{_dec(inc, scale)},{n},"
                     f"{fee if i == 0 else '0'},{_dec(cost, 9)}")
    return ";".join(parts)


# -- building from the YAML document -----------------------------------------------------------
def _frac(path: str, where: str, v: Any) -> Fraction:
    try:
        f = Fraction(Decimal(str(v)))
    except (ValueError, ArithmeticError):
        raise TariffError(path, None, f"{v!r} is not a number", where) from None
    if f < 0:
        raise TariffError(path, None, f"{v!r} is negative", where)
    return f


def _ints(path: str, where: str, v: Any) -> frozenset[int]:
    if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        raise TariffError(path, None, "must be a list of integers", where)
    return frozenset(v)


def build_cgrates_book(raw: Mapping[str, Any], path: str):
    """A TariffBook whose plans rate with CGRateS semantics, from a ``cgrates:`` document."""
    from streams.core.tariff.rating import TariffBook

    c = raw.get("cgrates")
    extra = set(raw) - {"cgrates", "format", "description", "currency"}
    if extra or not isinstance(c, dict):
        raise TariffError(path, None, f"a CGRateS tariff document has only 'cgrates' (and format, description); got {sorted(extra)}")
    try:
        tz_name = str(c.get("timezone", "UTC"))
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise TariffError(path, None, f"unknown time zone {c.get('timezone')!r}", "cgrates.timezone") from None
    rd = c.get("rounding_decimals", 5)
    if not isinstance(rd, int) or not 0 <= rd <= 6:
        raise TariffError(path, None, "rounding_decimals must be 0..6", "cgrates.rounding_decimals")
    from streams.core.currency import of_document
    try:
        currency = of_document(raw)
    except ValueError as exc:
        raise TariffError(path, None, str(exc), "currency") from None
    depth = c.get("fallback_depth", 3)
    if not isinstance(depth, int) or depth < 1:
        raise TariffError(path, None, "fallback_depth must be a positive integer", "cgrates.fallback_depth")
    reverse: dict[str, list[str]] = {}
    for did, prefixes in (c.get("destinations") or {}).items():
        for p in prefixes or ():
            p = str(p)
            p = p[1:] if p.startswith("+") else p
            if not p:
                raise TariffError(path, None, "empty prefix", f"cgrates.destinations.{did}")
            if did not in reverse.setdefault(p, []):
                reverse[p].append(did)
    timings: dict[str, Timing] = {ANY: Timing(ANY, frozenset(), frozenset(), frozenset(), frozenset(), 0)}
    for tid, t in (c.get("timings") or {}).items():
        w = f"cgrates.timings.{tid}"
        if not isinstance(t, dict):
            raise TariffError(path, None, "must be a mapping", w)
        start_s = t.get("start_s", 0)
        if not isinstance(start_s, int) or not 0 <= start_s < 86400:
            raise TariffError(path, None, "start_s must be 0..86399", w)
        timings[tid] = Timing(tid, _ints(path, w, t.get("years", [])), _ints(path, w, t.get("months", [])),
                              _ints(path, w, t.get("month_days", [])),
                              frozenset(d % 7 for d in _ints(path, w, t.get("week_days", []))), start_s)
    rates: dict[str, tuple[Fraction, tuple[RateGroup, ...]]] = {}
    for rid, rows in (c.get("rates") or {}).items():
        w = f"cgrates.rates.{rid}"
        if not isinstance(rows, list) or not rows:
            raise TariffError(path, None, "must be a non-empty list", w)
        groups = []
        for r in rows:
            if not isinstance(r, dict):
                raise TariffError(path, None, "each row needs start_ns, rate, unit_ns, increment_ns", w)
            vals = [r.get(k, 0) for k in ("start_ns", "unit_ns", "increment_ns")]
            if not all(isinstance(v, int) and v >= 0 for v in vals):
                raise TariffError(path, None, "start_ns, unit_ns and increment_ns must be integers >= 0", w)
            start_ns, unit, inc = vals
            groups.append(RateGroup(start_ns, _frac(path, w, r.get("rate", 0)), unit or NS, inc or NS))
        rates[rid] = (_frac(path, w, rows[0].get("connect_fee", 0)), tuple(sorted(groups, key=lambda g: g.start_ns)))
    drs: dict[str, list[dict]] = {}
    for drid, rows in (c.get("destination_rates") or {}).items():
        w = f"cgrates.destination_rates.{drid}"
        for r in rows or ():
            if not isinstance(r, dict) or not isinstance(r.get("destination"), str):
                raise TariffError(path, None, "each row needs destination, rates, method, decimals", w)
            if r["destination"] != ANY and r["destination"] not in (c.get("destinations") or {}):
                raise TariffError(path, None, f"destination {r['destination']!r} is not defined", w)
            if r.get("rates") not in rates:
                raise TariffError(path, None, f"rates {r.get('rates')!r} is not defined", w)
            if r.get("method", "*middle") not in METHODS or r.get("strategy", "") not in STRATEGIES:
                raise TariffError(path, None, "method must be *up, *down or *middle; strategy *free, *disconnect or empty", w)
            dec = r.get("decimals", 4)
            if not isinstance(dec, int) or not 0 <= dec <= 6:
                raise TariffError(path, None, "decimals must be 0..6", w)
            drs.setdefault(drid, []).append(r)
    rplans: dict[str, dict[str, list[RateInterval]]] = {}
    for rpid, rows in (c.get("rating_plans") or {}).items():
        w = f"cgrates.rating_plans.{rpid}"
        plan: dict[str, list[RateInterval]] = rplans.setdefault(rpid, {})
        for r in rows or ():
            if not isinstance(r, dict):
                raise TariffError(path, None, "each row needs destination_rates, timing, weight", w)
            if r.get("destination_rates") not in drs or r.get("timing") not in timings:
                raise TariffError(path, None, f"unknown destination_rates {r.get('destination_rates')!r} or timing {r.get('timing')!r}", w)
            for dr in drs[r["destination_rates"]]:
                fee, groups = rates[dr["rates"]]
                try:
                    ri = RateInterval(
                        timings[r["timing"]], _frac(path, w, r.get("weight", 0)), fee, groups,
                        dr.get("method", "*middle"), dr.get("decimals", 4),
                        _frac(path, w, dr.get("max_cost", 0)), dr.get("strategy", ""), dr["rates"])
                except ValueError as e:   # connect fee / max cost beyond whole nanos
                    raise TariffError(path, None, f"connect fee or max cost: {e}", w) from None
                plan.setdefault(str(dr["destination"]), []).append(ri)
    profiles: dict[str, tuple] = {}
    for key, rows in (c.get("profiles") or {}).items():
        w = f"cgrates.profiles.{key}"
        if not isinstance(key, str) or key.count(":") < 2:
            raise TariffError(path, None, "profile keys are Tenant:Category:Subject", w)
        tenant_cat = key.rsplit(":", 1)[0]
        acts = []
        for r in rows or ():
            if not isinstance(r, dict):
                raise TariffError(path, None, "each row needs activation, rating_plan, fallback", w)
            try:
                when = datetime.fromisoformat(str(r.get("activation")))
            except ValueError:
                raise TariffError(path, None, f"activation {r.get('activation')!r} is not an ISO date-time", w) from None
            if when.tzinfo is None:
                raise TariffError(path, None, "activation needs an offset", w)
            if r.get("rating_plan") not in rplans:
                raise TariffError(path, None, f"rating plan {r.get('rating_plan')!r} is not defined", w)
            ns = ((when - _EPOCH) // timedelta(microseconds=1)) * 1000
            acts.append((ns, r["rating_plan"], tuple(f"{tenant_cat}:{s}" for s in r.get("fallback") or ())))
        acts.sort(key=lambda a: a[0])
        profiles[key] = tuple(acts)
    data = CgrData(tz, rd, depth, {p: tuple(v) for p, v in reverse.items()},
                   {k: {d: tuple(v) for d, v in p.items()} for k, p in rplans.items()}, profiles)
    names = c.get("plans") or {k: k for k in profiles}
    plans: dict[str, Plan] = {}
    for name, key in names.items():
        if key not in profiles:
            raise TariffError(path, None, f"plan {name!r} names profile {key!r}, which is not defined", "cgrates.plans")
        versions = []
        seen: set[str] = set()
        for ns, rp_id, _ in profiles[key]:
            vid = rp_id if rp_id not in seen else f"{rp_id}@{ns // MS_NS}"
            seen.add(vid)
            versions.append(Version(vid, ns // MS_NS, {}, {}, RoundingRule(), Extras()))
        plans[name] = Plan(name, tz_name, versions, [v.effective_from_ms for v in versions],
                           rater=_Rater(data, key), currency=currency)
    return TariffBook(plans, source=path)


class _Rater:
    __slots__ = ("data", "key")

    def __init__(self, data: CgrData, key: str):
        self.data, self.key = data, key

    def __call__(self, cdr: Mapping[str, Any], plan: str) -> Rating:
        return rate_cgr(self.data, self.key, cdr, plan)

    def max_rate_per_min_micros(self, called_e164: str, at_ms: int) -> int:
        return max_rate_per_min_micros(self.data, self.key, called_e164, at_ms)


def max_rate_per_min_micros(data: CgrData, key: str, called_e164: str, at_ms: int) -> int:
    """Highest per-minute price (micro-units, rounded up) a voice call to ``called_e164`` starting
    at ``at_ms`` could be charged: every rate interval (all timings, since the call may run into
    any of them) and every GroupIntervalStart of the destination that the profile - fallbacks
    included - picks at the start, as rate x 60 s / RateUnit. NO_TARIFF when nothing covers the
    start, as rating would answer. Later activations are not looked at (the profile in force
    at the start prices the call until its next activation)."""
    number = called_e164[1:] if called_e164[:1] == "+" else called_e164
    start = at_ms * MS_NS
    best = None
    for info in data.rating_infos(key, number, start, start + 1):
        for ri in info.intervals or ():
            for g in ri.groups:
                x = g.rate * 60 * NS * 1_000_000 / g.unit_ns
                v = -((-x.numerator) // x.denominator)
                best = v if best is None or v > best else best
    if best is None:
        raise RejectError(Reason.NO_TARIFF, f"CGRateS profile {key!r}: no rate for {called_e164!r}")
    return best


__all__ = ["CgrData", "build_cgrates_book", "max_rate_per_min_micros", "rate_cgr", "round_cgr", "spans_text"]
