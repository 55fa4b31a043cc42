"""Extra rating rules: operator conditions, volume coefficients, commission, subscriptions.

Expected values are computed independently with Decimal arithmetic, never with the code under test.
"""
from __future__ import annotations

import textwrap
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from fractions import Fraction

import pytest

from streams.core.money import Rounding
from streams.core.tariff import TariffError, default_tariff_path, load_tariff_book, parse_tariff_text
from streams.core.tariff.extras import (apply_coefficient, book_subscription_charges, commission, extras_for,
                                        subscription_charges, volume_tier)
from streams.core.tariff.model import RoundingRule

D = Decimal
T = int(datetime(2026, 3, 10, 10, 0, tzinfo=timezone.utc).timestamp()) * 1000


def m(d) -> int:
    return int(D(d) * 1_000_000)


def q(d: Decimal, places: int) -> int:
    return m(d.quantize(D(1).scaleb(-places), rounding=ROUND_HALF_EVEN))


def agent_call(caller: str, billsec: int, **kw) -> dict:
    c = {"direction": "inbound", "called_type": "toll_free", "caller_e164": caller, "called_e164": "+318001234",
         "start_ms": T, "answer_ms": T, "billsec_s": billsec, "answered": True, "service": "voice",
         "stage": "agent", "trunk": ""}
    c.update(kw)
    return c


@pytest.fixture(scope="module")
def book():
    return load_tariff_book(default_tariff_path())


# -- call-centre agent stage: operator location and dedication ---------------------------------
def test_agent_without_operator_keys_is_priced_as_before(book):
    r = book.rate(agent_call("+31201234567", 61), plan="callcentre")       # 6 s steps: 66 s
    assert (r.destination, r.charged_s, r.cost_micros) == ("agent_nl", 66, q(D("0.04") * 66 / 60, 4))


def test_dedicated_operator_is_zero_rated(book):
    r = book.rate(agent_call("+31201234567", 61, operator_dedicated=True), plan="callcentre")
    assert (r.destination, r.cost_micros, r.cost_nanos) == ("agent_dedicated", 0, 0)
    # dedicated wins over location at equal condition count (documented precedence)
    r = book.rate(agent_call("+31201234567", 61, operator_dedicated=True, operator_location="remote"), plan="callcentre")
    assert r.destination == "agent_dedicated"


def test_operator_location(book):
    r = book.rate(agent_call("+31201234567", 61, operator_location="remote", operator_dedicated=False), plan="callcentre")
    assert (r.destination, r.cost_micros) == ("agent_remote_nl", q(D("0.03") * 66 / 60, 4))
    # the remote price list only covers +31 callers; others fall back to the stage rule
    r = book.rate(agent_call("+442071234567", 61, operator_location="remote"), plan="callcentre")
    assert (r.destination, r.cost_micros) == ("agent_world", q(D("0.12") * 66 / 60, 4))
    # not dedicated = an ordinary operator
    r = book.rate(agent_call("+31201234567", 61, operator_dedicated=False), plan="callcentre")
    assert r.destination == "agent_nl"
    # another stage ignores operator keys
    r = book.rate(agent_call("+31201234567", 61, stage="ivr", operator_dedicated=True), plan="callcentre")
    assert (r.destination, r.cost_micros) == ("ivr", q(D("0.01") * 61 / 60, 4))


def test_operator_conditions_in_csv():
    text = textwrap.dedent("""\
        plan,version,effective_from,timezone,destination,prefixes,start,rate,unit,increment,applies_to,stage,operator_dedicated,operator_location
        cc,1,2026-01-01T00:00:00+00:00,UTC,agent,31,0,0.06,60,1,inbound_toll_free,agent,,
        cc,1,,,agent_ded,31,0,0,60,1,inbound_toll_free,agent,true,
        cc,1,,,agent_msk,31,0,0.02,60,1,inbound_toll_free,agent,,RU-MOW
        """)
    b = parse_tariff_text(text, "cc.csv", "csv")
    assert b.rate(agent_call("+31201234567", 30), plan="cc").cost_micros == m(D("0.03"))
    assert b.rate(agent_call("+31201234567", 30, operator_dedicated=True), plan="cc").cost_micros == 0
    assert b.rate(agent_call("+31201234567", 30, operator_location="RU-MOW"), plan="cc").cost_micros == m(D("0.01"))
    bad = text.replace(",agent,true,", ",agent,maybe,")
    with pytest.raises(TariffError) as e:
        parse_tariff_text(bad, "cc.csv", "csv")
    assert e.value.row == 3 and "operator_dedicated" in e.value.problem


# -- volume coefficients ----------------------------------------------------------------------
def test_volume_tier_boundaries(book):
    ex = book.extras_at("callcentre", T)
    assert volume_tier(ex, 0) == 1
    assert volume_tier(ex, 9999) == 1
    assert volume_tier(ex, Fraction(99999, 10)) == 1
    assert volume_tier(ex, 10000) == Fraction("0.95")
    assert volume_tier(ex, 49999) == Fraction("0.95")
    assert volume_tier(ex, 50000) == Fraction("0.90")
    assert volume_tier(book.extras_at("default", T), 10 ** 9) == 1        # no tiers: list price
    with pytest.raises(ValueError):
        volume_tier(ex, -1)


def test_apply_coefficient_is_exact(book):
    ex = book.extras_at("callcentre", T)
    r = book.rate(agent_call("+31201234567", 61), plan="callcentre")     # 0.044
    r2 = apply_coefficient(r, volume_tier(ex, 12000), ex.rounding)
    assert r2.cost_micros == q(D("0.044") * D("0.95"), 4)
    assert r2.cost_nanos == int(D("0.044") * D("0.95") * 10 ** 9)
    assert (r2.rate_micros, r2.charged_s, r2.destination) == (r.rate_micros, r.charged_s, r.destination)
    assert apply_coefficient(r, Fraction(1), ex.rounding) is r
    r3 = apply_coefficient(r, Fraction(D("0.333")), ex.rounding)          # 0.014652 -> 0.0147
    assert r3.cost_micros == q(D("0.044") * D("0.333"), 4) == m("0.0147")
    # a tie rounds half to even at the configured decimals: 0.0025 -> 0.002
    tie = r._replace(cost_nanos=5_000_000, cost_micros=5000)
    assert apply_coefficient(tie, Fraction(1, 2), RoundingRule(Rounding.HALF_EVEN, 3)).cost_micros == m("0.002")
    assert apply_coefficient(tie, Fraction(1, 2), RoundingRule(Rounding.UP, 3)).cost_micros == m("0.003")


# -- partner commission -----------------------------------------------------------------------
PARTNER_YAML = textwrap.dedent("""\
    plans:
      retail:
        timezone: UTC
        versions:
          - version: "v1"
            effective_from: "2026-01-01T00:00:00+00:00"
            rounding: {method: half_even, decimals: 4}
            commission:
              - {partner: acme, percent: "12.5"}
              - {partner: beta, plan: beta_prices, label: "beta-wholesale"}
            subscription: {period: monthly, items: {platform: "150.00", seat: "19.99"}}
            volume_tiers: [{from_minutes: 0, coefficient: "1"}, {from_minutes: 100, coefficient: "0.8"}]
            destinations:
              nl: {prefixes: ["31"], groups: [{start: 0, rate: "0.0370", unit: 60, increment: 1}]}
          - version: "v2"
            effective_from: "2026-04-01T00:00:00+00:00"
            extends: "v1"
            subscription: {period: monthly, items: {platform: "175.00"}}
      beta_prices:
        timezone: UTC
        versions:
          - version: "b1"
            effective_from: "2026-01-01T00:00:00+00:00"
            rounding: {method: up, decimals: 2}
            destinations:
              nl: {prefixes: ["31"], groups: [{start: 0, rate: "0.01", unit: 60, increment: 60}]}
    """)


def out_call(billsec: int, at: int = T) -> dict:
    return {"direction": "outbound", "called_e164": "+31201234567", "caller_e164": "+31101234567",
            "called_type": "fixed", "start_ms": at, "answer_ms": at, "billsec_s": billsec, "answered": True}


def test_commission_percent_and_partner_price_list():
    b = parse_tariff_text(PARTNER_YAML, "p.yaml", "yaml")
    cdr = out_call(73)
    r = b.rate(cdr, plan="retail")
    cost = D("0.0370") * 73 / 60                                  # 0.045016666...
    assert r.cost_micros == q(cost, 4)
    ex = extras_for(b, "retail", cdr)
    acme, beta = ex.commission
    c = commission(r, acme, rounding=ex.rounding)
    exact_nanos = (cost * 10 ** 9).quantize(D(1), rounding=ROUND_HALF_EVEN)     # rating's nanos
    assert r.cost_nanos == int(exact_nanos)
    assert c.tariff_plan == "commission:acme"
    assert c.cost_nanos == int((exact_nanos * D("0.125")).quantize(D(1), rounding=ROUND_HALF_EVEN))
    assert c.cost_micros == q(exact_nanos * D("0.125") / 10 ** 9, 4)
    assert c.rate_micros == int(D("0.0370") * D("0.125") * 10 ** 6)
    cb = commission(r, beta, cdr=cdr, book=b)
    assert cb.tariff_plan == "beta-wholesale"
    assert cb.cost_micros == m("0.02") and cb.charged_s == 120          # 73 s -> 2 x 60 s at 0.01
    with pytest.raises(ValueError):
        commission(r, beta)


def test_subscription_by_period_and_version():
    b = parse_tariff_text(PARTNER_YAML, "p.yaml", "yaml")
    assert book_subscription_charges(b, "retail", "2026-03") == [("platform", m("150.00")), ("seat", m("19.99"))]
    assert book_subscription_charges(b, "retail", "2026-04") == [("platform", m("175.00"))]
    # extends copies the keys the later version does not name
    assert volume_tier(b.extras_at("retail", T + 10 ** 11), 150) == Fraction(4, 5)
    with pytest.raises(ValueError):
        subscription_charges(b.extras_at("retail", T), "2026-W10")
    assert subscription_charges(b.extras_at("beta_prices", T), "2026-03") == []


def test_default_callcentre_subscription(book):
    items = book_subscription_charges(book, "callcentre", "2026-03")
    assert items == [("platform", m("150.00")), ("dedicated_operator", m("900.00"))]
    assert sum(v for _, v in items) == m(D("150.00") + D("900.00"))


@pytest.mark.parametrize("snippet,problem", [
    ('volume_tiers: [{from_minutes: 5, coefficient: "1"}]', "first tier"),
    ('volume_tiers: [{from_minutes: 0, coefficient: 0.9}]', "quoted decimal"),
    ('volume_tiers: [{from_minutes: 0, coefficient: "1"}, {from_minutes: 0, coefficient: "0.9"}]', "increase"),
    ('commission: [{partner: a, percent: "5", plan: x}]', "exactly one"),
    ('commission: [{partner: a, plan: nowhere}]', "not a plan of this file"),
    ('subscription: {period: yearly, items: {a: "1"}}', "period"),
    ('subscription: {period: monthly, items: {a: 1.5}}', "quoted decimal"),
])
def test_extras_config_errors_name_the_row(snippet, problem):
    text = textwrap.dedent(f"""\
        plans:
          p:
            timezone: UTC
            versions:
              - version: "1"
                effective_from: "2026-01-01T00:00:00+00:00"
                {snippet}
                destinations:
                  nl: {{prefixes: ["31"], groups: [{{start: 0, rate: "0.01", unit: 60, increment: 1}}]}}
        """)
    with pytest.raises(TariffError) as e:
        parse_tariff_text(text, "x.yaml", "yaml")
    assert problem in e.value.problem
    assert e.value.row == 7
