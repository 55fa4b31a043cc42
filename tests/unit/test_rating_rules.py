"""Table-driven tests of the rating rules. Expected money is worked out here with Decimal."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, ROUND_UP, Decimal

import pytest

from streams.core.reasons import Reason, RejectError
from streams.core.tariff import Rating, TariffBook, TariffError, parse_tariff_text

D = Decimal


def micros(d: Decimal) -> int:
    v = d * 1_000_000
    assert v == v.to_integral_value(), f"{d} is not a whole number of micro-units"
    return int(v)


def nanos(d: Decimal) -> int:
    return int((d * 1_000_000_000).quantize(D(1), rounding=ROUND_HALF_EVEN))


def utc_ms(*a: int) -> int:
    return int(datetime(*a, tzinfo=timezone.utc).timestamp()) * 1000


T0 = utc_ms(2026, 3, 10, 10, 0, 0)  # a Tuesday


def cdr(called: str = "+441012345", billsec: int = 60, *, at: int = T0, answered: bool | None = None,
        direction: str = "outbound", caller: str = "+31201234567", called_type: str = "fixed",
        service: str = "voice", **extra) -> dict:
    d = {
        "direction": direction, "called_e164": called, "caller_e164": caller, "called_type": called_type,
        "trunk": "", "start_ms": at - 3000, "answer_ms": at if billsec else None,
        "end_ms": at + billsec * 1000, "duration_s": billsec + 3, "billsec_s": billsec,
        "answered": bool(billsec) if answered is None else answered, "service": service,
        "stage": "", "account": "a1",
    }
    d.update(extra)
    return d


RULES_YAML = """
plans:
  default:
    timezone: Europe/Amsterdam
    versions:
      - version: "v1"
        effective_from: "2026-01-01T00:00:00+01:00"
        rounding: {method: half_even, decimals: 6}
        services: {sms: "0.05", fax: "0.10"}
        destinations:
          d6060:    {prefixes: ["4410"], groups: [{start: 0, rate: "0.06", unit: 60, increment: 60}]}
          d306:
            prefixes: ["4420"]
            groups: [{start: 0, rate: "0.09", unit: 60, increment: 30}, {start: 30, rate: "0.09", unit: 60, increment: 6}]
          d11min:   {prefixes: ["4430"], min_duration: 30, groups: [{start: 0, rate: "0.12", unit: 60, increment: 1}]}
          d60then6:
            prefixes: ["4440"]
            connect_fee: "0.10"
            groups: [{start: 0, rate: "0.05", unit: 60, increment: 60}, {start: 60, rate: "0.02", unit: 60, increment: 6}]
          dmax:     {prefixes: ["4450"], connect_fee: "0.05", max_cost: "0.50", groups: [{start: 0, rate: "1.00", unit: 60, increment: 1}]}
          dprem:    {prefixes: ["4460"], connect_fee: "0.50", free_seconds: 10, groups: [{start: 0, rate: "0.80", unit: 60, increment: 1}]}
          dunans:   {prefixes: ["4470"], connect_fee: "0.20", charge_unanswered: true, groups: [{start: 0, rate: "0.01", unit: 60, increment: 60}]}
          dcall:
            prefixes: ["4480"]
            rounding: {method: up, decimals: 2}
            groups: [{start: 0, rate: "0.01", unit: 60, increment: 6}]
          dinc:
            prefixes: ["4481"]
            rounding: {method: up, decimals: 2, per_increment: true}
            groups: [{start: 0, rate: "0.01", unit: 60, increment: 6}]
          dthird:   {prefixes: ["4490"], groups: [{start: 0, rate: "0.01", unit: 3, increment: 1}]}
          ddown:    {prefixes: ["4491"], rounding: {method: down, decimals: 2}, groups: [{start: 0, rate: "0.0999", unit: 60, increment: 60}]}
          dhalf:    {prefixes: ["4492"], rounding: {method: half_even, decimals: 2}, groups: [{start: 0, rate: "0.025", unit: 60, increment: 60}]}
          dhalf2:   {prefixes: ["4493"], rounding: {method: half_even, decimals: 2}, groups: [{start: 0, rate: "0.035", unit: 60, increment: 60}]}
          dunit:    {prefixes: ["4494"], groups: [{start: 0, rate: "0.06", unit: 60, increment: 1}, {start: 120, rate: "0.03", unit: 30, increment: 10}]}
          uk:       {prefixes: ["44"], groups: [{start: 0, rate: "0.30", unit: 60, increment: 60}]}
          uk_mob:   {prefixes: ["447"], groups: [{start: 0, rate: "0.40", unit: 60, increment: 60}]}
          uk_mob7:  {prefixes: ["4477"], groups: [{start: 0, rate: "0.45", unit: 60, increment: 60}]}
          tf_in_uk: {applies_to: inbound_toll_free, prefixes: ["44"], groups: [{start: 0, rate: "0.20", unit: 60, increment: 1}]}
          tf_in_nl: {applies_to: inbound_toll_free, prefixes: ["31"], groups: [{start: 0, rate: "0.02", unit: 60, increment: 1}]}
          in_free:  {applies_to: inbound, prefixes: ["31", "44"], groups: [{start: 0, rate: "0", unit: 60, increment: 1}]}
          trunk_t1:  {when: {trunk: t1}, prefixes: ["4"], groups: [{start: 0, rate: "0.01", unit: 60, increment: 60}]}
          stage_ivr: {when: {stage: ivr}, prefixes: ["4"], groups: [{start: 0, rate: "0.02", unit: 60, increment: 60}]}
          ct_emerg:  {when: {called_type: emergency}, prefixes: ["1"], groups: [{start: 0, rate: "0", unit: 60, increment: 1}]}
          both:      {when: {stage: ivr, trunk: t1}, prefixes: ["44"], groups: [{start: 0, rate: "0.03", unit: 60, increment: 60}]}
"""


@pytest.fixture(scope="module")
def book() -> TariffBook:
    return parse_tariff_text(RULES_YAML, "<rules>", "yaml")


# (called number, billsec, expected charged_s, expected exact cost as Decimal)
CASES = [
    # 60/60: every started minute is a full minute
    ("+441012", 1, 60, D("0.06")),
    ("+441012", 60, 60, D("0.06")),
    ("+441012", 61, 120, D("0.06") * 2),
    # 30/6: first 30 s, then per 6 s
    ("+442012", 1, 30, D("0.09") * 30 / 60),
    ("+442012", 30, 30, D("0.09") * 30 / 60),
    ("+442012", 31, 36, D("0.09") * 36 / 60),
    ("+442012", 37, 42, D("0.09") * 42 / 60),
    # 1/1 with a 30 s minimum
    ("+443012", 5, 30, D("0.12") * 30 / 60),
    ("+443012", 31, 31, D("0.12") * 31 / 60),
    # connect fee once, first minute at 0.05 then per 6 s at 0.02
    ("+444012", 59, 60, D("0.10") + D("0.05")),
    ("+444012", 61, 66, D("0.10") + D("0.05") + D("0.02") * 6 / 60),
    ("+444012", 185, 186, D("0.10") + D("0.05") + D("0.02") * 126 / 60),
    # max cost caps the whole call, connect fee included
    ("+445012", 20, 20, D("0.05") + D("1.00") * 20 / 60),
    ("+445012", 3600, 3600, D("0.50")),
    # premium: fee + 10 s included + per second
    ("+446012", 10, 0, D("0.50")),
    ("+446012", 70, 60, D("0.50") + D("0.80")),
    ("+446012", 95, 85, D("0.50") + D("0.80") * 85 / 60),
    # a rate per 3 s gives thirds of a nano: rounded half-even once, at the nano
    ("+449012", 1, 1, D("0.01") / 3),
    ("+449012", 2, 2, D("0.01") * 2 / 3),
    # units differ between groups: 120 s per second at 0.06/60 s, then per 10 s at 0.03/30 s
    ("+449412", 121, 130, D("0.06") * 120 / 60 + D("0.03") * 10 / 30),
]


@pytest.mark.parametrize("called,billsec,charged,cost", CASES)
def test_increments_and_fees(book, called, billsec, charged, cost):
    r = book.rate(cdr(called, billsec))
    assert r.charged_s == charged
    assert r.cost_nanos == nanos(cost)
    # decimals 6, half-even: the billed amount is the cost to the micro
    assert r.cost_micros == int((cost * 1_000_000).quantize(D(1), rounding=ROUND_HALF_EVEN))


def test_thirds_of_a_nano_round_half_even():
    # 0.01/3 = 3 333 333.33.. nanos
    assert nanos(D("0.01") / 3) == 3_333_333


@pytest.mark.parametrize("called,billsec,expected", [
    # per call: 60 s at 0.01/min = 0.01 exactly, up to cents = 0.01
    ("+448012", 60, D("0.01")),
    # per call: 6 s = 0.001 -> up to 0.01
    ("+448012", 6, D("0.01")),
    # per call: 66 s = 0.011 -> up to 0.02
    ("+448012", 66, D("0.02")),
    # per increment: each 6 s increment costs 0.001 -> rounded up to 0.01, ten of them = 0.10
    ("+448112", 60, D("0.01") * 10),
    ("+448112", 66, D("0.01") * 11),
    # down: 0.0999 -> 0.09
    ("+449112", 60, D("0.09")),
    # half-even at the cent: 0.025 -> 0.02, 0.035 -> 0.04
    ("+449212", 60, D("0.02")),
    ("+449312", 60, D("0.04")),
])
def test_rounding_methods(book, called, billsec, expected):
    assert book.rate(cdr(called, billsec)).cost_micros == micros(expected)


def test_per_increment_keeps_unrounded_nanos(book):
    r = book.rate(cdr("+448112", 60))
    assert r.cost_nanos == nanos(D("0.01"))
    assert r.cost_micros == micros(D("0.10"))
    up = (D("0.011")).quantize(D("0.01"), rounding=ROUND_UP)
    assert book.rate(cdr("+448012", 66)).cost_micros == micros(up)
    assert (D("0.0999")).quantize(D("0.01"), rounding=ROUND_DOWN) == D("0.09")


def test_rating_fields(book):
    r = book.rate(cdr("+444012345", 61))
    assert isinstance(r, Rating)
    assert r._asdict() == {
        "cost_nanos": nanos(D("0.10") + D("0.05") + D("0.002")), "cost_micros": micros(D("0.152")),
        "charged_s": 66, "rate_micros": 50_000, "rate_unit_s": 60, "connect_fee_micros": 100_000,
        "destination": "d60then6", "prefix": "4440", "tariff_plan": "default", "tariff_version": "v1",
        "spans": (),   # the cost breakdown is filled only for CGRateS-semantics plans
        "currency": "EUR",   # the tariff file's currency (absent = EUR; streams/core/currency.py)
    }
    with pytest.raises(AttributeError):
        r.cost_micros = 1  # type: ignore[misc]


@pytest.mark.parametrize("called,answered,billsec,cost", [
    ("+441012", False, 0, D(0)),
    ("+441012", True, 0, D(0)),          # answered but zero billsec
    ("+441012", False, 30, D(0)),        # billsec without an answer is not billed
    ("+444012", False, 0, D(0)),         # connect fee not charged unless the tariff says so
    ("+447012", False, 0, D("0.20")),    # charge_unanswered: connect fee only
])
def test_unanswered(book, called, answered, billsec, cost):
    r = book.rate(cdr(called, billsec, answered=answered))
    assert r.charged_s == 0
    assert r.cost_micros == micros(cost)
    assert r.cost_nanos == nanos(cost)


@pytest.mark.parametrize("called,extra,dest,prefix", [
    ("+441199", {}, "uk", "44"),
    ("+447123", {}, "uk_mob", "447"),
    ("+447712", {}, "uk_mob7", "4477"),       # longest prefix wins
    ("+441012", {}, "d6060", "4410"),
    # conditions outrank prefix length: any index whose conditions hold is tried first
    ("+447712", {"trunk": "t1"}, "trunk_t1", "4"),
    ("+447712", {"stage": "ivr"}, "stage_ivr", "4"),
    # stage outranks trunk at equal condition count; two conditions outrank one
    ("+437712", {"stage": "ivr", "trunk": "t1"}, "stage_ivr", "4"),
    ("+447712", {"stage": "ivr", "trunk": "t1"}, "both", "44"),
    ("+447712", {"trunk": "t2"}, "uk_mob7", "4477"),
    ("112", {"called_type": "emergency"}, "ct_emerg", "1"),
])
def test_prefix_selection(book, called, extra, dest, prefix):
    r = book.rate(cdr(called, 60, **extra))
    assert (r.destination, r.prefix) == (dest, prefix)


def test_inbound_toll_free_rated_by_caller(book):
    r = book.rate(cdr("+31800123456", 90, direction="inbound", called_type="toll_free", caller="+447700900123"))
    assert (r.destination, r.prefix) == ("tf_in_uk", "44")
    assert r.cost_micros == micros(D("0.20") * 90 / 60)
    r = book.rate(cdr("+31800123456", 90, direction="inbound", called_type="toll_free", caller="+31612345678"))
    assert r.destination == "tf_in_nl"
    r = book.rate(cdr("+31201234567", 90, direction="inbound", called_type="fixed", caller="+447700900123"))
    assert (r.destination, r.cost_micros) == ("in_free", 0)


@pytest.mark.parametrize("service,price", [("sms", D("0.05")), ("fax", D("0.10"))])
def test_flat_services(book, service, price):
    r = book.rate(cdr("+31612345678", 0, service=service))
    assert (r.cost_micros, r.cost_nanos, r.destination, r.prefix, r.charged_s) == (micros(price), nanos(price), service, "", 0)


@pytest.mark.parametrize("kwargs,plan", [
    ({"called": "+999"}, "default"),                  # no destination on this side (9 unknown)
    ({"called": "+44abc"}, "default"),                # not digits: never matched by a prefix
    ({"called": ""}, "default"),
    ({"called": "+441012"}, "nope"),                  # no such plan
    ({"called": "+441012", "service": "email"}, "default"),
    ({"called": "+441012", "at": utc_ms(2025, 12, 31, 22, 59, 59)}, "default"),  # before v1
    ({"called": "+999", "direction": "inbound", "called_type": "toll_free", "caller": "+999"}, "default"),
])
def test_no_tariff(book, kwargs, plan):
    with pytest.raises(RejectError) as ei:
        book.rate(cdr(**kwargs), plan=plan)
    assert ei.value.reason is Reason.NO_TARIFF


def test_max_rate_per_min(book):
    assert book.max_rate_per_min_micros("default", "+447712345", T0) == micros(D("0.45"))
    # 0.01 per 3 s = 0.20 per minute
    assert book.max_rate_per_min_micros("default", "+449012", T0) == micros(D("0.20"))
    assert book.max_rate_per_min_micros("default", "+4494", T0) == micros(D("0.06"))
    with pytest.raises(RejectError):
        book.max_rate_per_min_micros("default", "+999", T0)


VERSIONS_YAML = """
plans:
  default:
    timezone: Europe/Amsterdam
    versions:
      - version: "2026-03"
        effective_from: "2026-03-01T00:00:00+01:00"
        services: {sms: "0.05"}
        destinations:
          nl:  {prefixes: ["31"], groups: [{start: 0, rate: "0.02", unit: 60, increment: 60}]}
          mob: {prefixes: ["316"], groups: [{start: 0, rate: "0.08", unit: 60, increment: 60}]}
      - version: "2026-03-mid"
        effective_from: "2026-03-15T00:00:00+01:00"
        extends: "2026-03"
        destinations:
          mob: {prefixes: ["316"], groups: [{start: 0, rate: "0.06", unit: 60, increment: 60}]}
          nl: null
          be: {prefixes: ["32"], groups: [{start: 0, rate: "0.05", unit: 60, increment: 60}]}
"""


@pytest.mark.parametrize("at,version,mob_rate", [
    (utc_ms(2026, 3, 14, 22, 59, 59), "2026-03", D("0.08")),       # 23:59:59 CET on the 14th
    (utc_ms(2026, 3, 14, 23, 0, 0), "2026-03-mid", D("0.06")),     # 00:00 CET on the 15th
    (utc_ms(2026, 3, 31, 12, 0, 0), "2026-03-mid", D("0.06")),
])
def test_version_change_mid_month(at, version, mob_rate):
    b = parse_tariff_text(VERSIONS_YAML, "<v>", "yaml")
    r = b.rate(cdr("+31612345678", 120, at=at))
    assert (r.tariff_version, r.cost_micros) == (version, micros(mob_rate * 2))
    # the service list is inherited by the extending version
    assert b.rate(cdr("", 0, at=at + 3000, service="sms")).tariff_version == version


def test_version_in_force_at_answer_prices_the_whole_call():
    b = parse_tariff_text(VERSIONS_YAML, "<v>", "yaml")
    # answered one minute before the change, runs an hour past it
    r = b.rate(cdr("+31612345678", 3660, at=utc_ms(2026, 3, 14, 22, 59, 0)))
    assert (r.tariff_version, r.cost_micros) == ("2026-03", micros(D("0.08") * 61))
    # removed and added destinations follow the version
    r = b.rate(cdr("+31201234567", 60, at=utc_ms(2026, 3, 14, 12, 0, 0)))
    assert r.destination == "nl"
    with pytest.raises(RejectError):
        b.rate(cdr("+31201234567", 60, at=utc_ms(2026, 3, 15, 12, 0, 0)))
    assert b.rate(cdr("+32201234567", 60, at=utc_ms(2026, 3, 15, 12, 0, 0))).destination == "be"
    assert b.versions("default") == ("2026-03", "2026-03-mid")


def test_unanswered_call_uses_start_time_for_version():
    b = parse_tariff_text(VERSIONS_YAML, "<v>", "yaml")
    c = cdr("+31612345678", 0, at=utc_ms(2026, 3, 15, 12, 0, 0))
    assert c["answer_ms"] is None
    assert b.rate(c).tariff_version == "2026-03-mid"


def test_tariff_error_is_value_error():
    assert issubclass(TariffError, ValueError)
