"""The account agent's batch step without Kafka: replay, duplicates, rejects, counts.

Money is checked against costs the test computes by hand from the default tariff's published
prices, not against the rating code.
"""
from __future__ import annotations

from streams import codecs
from streams.core import credit
from streams.core.normalize import normalize
from streams.core.sources import NumberingContext
from streams.core.tariff import load_tariff_book
from streams.msg import Msg
from streams.pipeline import charge_partition
from streams.settings import DATA_DIR

NOW = 1_795_000_000_000          # 2026-11-18 UTC
BOOK = load_tariff_book(DATA_DIR / "tariff_default.yaml")


def rate(cdr, plan):
    return BOOK.rate(cdr, plan=plan)


def raw(call_id: str, called: str, billsec: int, account: str = "A1") -> dict:
    start = NOW - 3_600_000
    return {"switch_id": "sw", "call_id": call_id, "leg": "A", "partial_seq": 0, "partial_final": True,
            "correlation_id": None, "account": account, "service_user": "ext1", "direction": "outbound",
            "caller": "0201234567", "presented_cli": None, "called": called, "trunk": "t1",
            "start_ms": start, "answer_ms": start + 5_000, "end_ms": start + 5_000 + billsec * 1000,
            "duration_s": 5 + billsec, "billsec_s": billsec, "disposition": "ANSWERED", "service": "voice"}


def canonical(r: dict) -> dict:
    c = normalize(r, NumberingContext(), now_ms=NOW)
    c.update(source_topic="cdr.raw", source_partition=0, source_offset=1, source_index=0, ingest_ms=NOW, raw=b"x")
    return c


def provision_msg(offset: int, credit_micros: int = 1_000_000) -> Msg:
    cmd = {"command_id": "p", "account": "A1", "action": "provision", "credit_micros": credit_micros,
           "profile": None, "timezone": "Europe/Amsterdam", "period_kind": "monthly", "soft_limit_pct": 50,
           "tariff_plan": "default", "always_allowed": None, "issued_ms": NOW}
    return Msg("account.control", 0, offset, NOW, codecs.encode(codecs.CONTROL, cmd))


def batch_msg(offset: int, cdrs: list[dict]) -> Msg:
    return Msg("cdr.normalized", 0, offset, NOW, codecs.encode_batch(codecs.CANONICAL_BATCH, cdrs))


class Table(dict):
    def apply(self, res, states):
        for a in res.touched:
            self[a] = states[a]


def run(table: Table, msgs: list[Msg]):
    res, states = charge_partition(msgs, table.get, rate, NOW, 35)
    table.apply(res, states)
    return res


def test_rates_dedups_and_re_emits_on_redelivery():
    table = Table()
    run(table, [provision_msg(0)])
    # NL mobile: 0.08/min billed 30 s then per 6 s (default tariff). 61 s -> 66 s -> 0.088.
    c1 = canonical(raw("c1", "0612345678", 61))
    c2 = canonical(raw("c2", "0612345678", 30))           # 30 s -> 0.04
    res = run(table, [batch_msg(10, [c1, c2])])
    assert [r["cost_micros"] for r in res.rated] == [88_000, 40_000]
    assert table["A1"]["spend"]["2026-11"] == 128_000

    # A switch re-sends c1 in a new message: a duplicate, no output, no spend.
    res = run(table, [batch_msg(11, [c1])])
    assert res.duplicates == 1 and res.rated == [] and table["A1"]["spend"]["2026-11"] == 128_000

    # Redelivery of offset 10 after a crash: outputs again (same keys), spend unchanged.
    res = run(table, [batch_msg(10, [c1, c2])])
    assert res.redelivered == 2 and [r["cdr_key"] for r in res.rated] == [c1["cdr_key"], c2["cdr_key"]]
    assert table["A1"]["spend"]["2026-11"] == 128_000


def test_redelivery_re_emits_the_transition_it_caused_with_the_same_id():
    table = Table()
    run(table, [provision_msg(0, credit_micros=100_000)])
    c1 = canonical(raw("c1", "0612345678", 61))           # 0.088 of 0.10 -> soft (50 %) limit
    first = run(table, [batch_msg(5, [c1])])
    assert [e["reason"] for e in first.events] == ["soft_limit"]
    again = run(table, [batch_msg(5, [c1])])
    assert [e["event_id"] for e in again.events] == [first.events[0]["event_id"]]
    assert table["A1"]["seq"] == 1


def test_unknown_account_and_no_tariff_are_rejected_with_raw_bytes():
    table = Table()
    run(table, [provision_msg(0)])
    unknown = canonical(raw("u1", "0612345678", 10, account="NOPE"))
    res = run(table, [batch_msg(3, [unknown])])
    [rej] = res.rejects
    assert rej["reason"] == "unknown_account" and rej["raw"] == b"x" and rej["stage"] == "charge"
    assert (rej["source_topic"], rej["source_partition"], rej["source_offset"]) == ("cdr.raw", 0, 1)
    assert "cdrflow recycle" in rej["detail"]


def test_control_and_cdrs_in_one_batch_apply_in_order():
    table = Table()
    c1 = canonical(raw("c1", "0201234568", 60))
    res = run(table, [provision_msg(0), batch_msg(0, [c1])])
    assert len(res.rated) == 1 and res.rejects == []
    snap = credit.snapshot(table["A1"], NOW)
    assert snap["spend_micros"] == res.rated[0]["cost_micros"]


def test_undecodable_internal_message_is_counted_not_fatal():
    table = Table()
    res = run(table, [Msg("cdr.normalized", 0, 1, NOW, b"garbage")])
    assert res.command_errors and res.rated == []


def test_a_batch_that_fails_half_way_leaves_stored_state_untouched():
    import copy

    import pytest

    table = Table()
    run(table, [provision_msg(0)])
    run(table, [batch_msg(1, [canonical(raw("c1", "0612345678", 61))])])
    before = copy.deepcopy(table["A1"])
    calls = []

    def flaky(cdr, plan):
        calls.append(cdr["call_id"])
        if len(calls) == 2:
            raise RuntimeError("tariff store unavailable")
        return BOOK.rate(cdr, plan=plan)

    with pytest.raises(RuntimeError):
        charge_partition([batch_msg(2, [canonical(raw("c2", "0612345678", 30)),
                                        canonical(raw("c3", "0612345678", 30))])], table.get, flaky, NOW, 35)
    assert table["A1"] == before


EXTRAS_TARIFF = """
format: cdrflow-tariff/1
currency: EUR
plans:
  vol:
    timezone: Europe/Amsterdam
    versions:
      - version: "v1"
        effective_from: "2000-01-01T00:00:00+01:00"
        rounding: {method: half_even, decimals: 6}
        volume_tiers:
          - {from_minutes: 0, coefficient: "1"}
          - {from_minutes: 1, coefficient: "0.5"}
        subscription:
          period: monthly
          items: {platform: "5.00", support: "1.25"}
        commission:
          - {partner: reseller, percent: "10"}
        destinations:
          nl_mobile:
            prefixes: ["316"]
            groups: [{start: 0, rate: "0.60", unit: 60, increment: 60}]
"""


def test_volume_tiers_commissions_and_subscriptions_apply_in_the_charge_stage():
    from streams.core.tariff import parse_tariff_text

    book = parse_tariff_text(EXTRAS_TARIFF, "extras.yaml", "yaml")
    cmd = {"command_id": "p", "account": "V1", "action": "provision", "credit_micros": 100_000_000,
           "profile": None, "timezone": "Europe/Amsterdam", "period_kind": "monthly", "soft_limit_pct": 80,
           "tariff_plan": "vol", "always_allowed": None, "issued_ms": NOW}
    table = Table()
    res, states = charge_partition([Msg("account.control", 0, 0, NOW, codecs.encode(codecs.CONTROL, cmd))],
                                   table.get, lambda c, p: book.rate(c, plan=p), NOW, 35, book=book)
    table.apply(res, states)
    # The period's fees, once, at provisioning: 5.00 + 1.25.
    assert sorted((r["destination"], r["cost_micros"]) for r in res.rated) == [("platform", 5_000_000),
                                                                               ("support", 1_250_000)]
    calls = [canonical(raw(f"v{i}", "0612345678", 60, account="V1")) for i in range(2)]
    res, states = charge_partition([batch_msg(1, calls)], table.get, lambda c, p: book.rate(c, plan=p), NOW, 35,
                                   book=book)
    table.apply(res, states)
    # First minute at the list price 0.60; the second after 1 minute used: half price 0.30.
    assert [r["cost_micros"] for r in res.rated] == [600_000, 300_000]
    # The reseller earns 10 % of each, on its own records, never in the customer's spend.
    assert [(r["cdr_key"].split("#")[1], r["cost_micros"]) for r in res.commissions] == [
        ("commission:reseller", 60_000), ("commission:reseller", 30_000)]
    assert table["V1"]["spend"][table["V1"]["period"]] == 900_000
    # Fees are not charged again in the same period.
    res, _ = charge_partition([batch_msg(2, [canonical(raw("v9", "0612345678", 60, account="V1"))])],
                              table.get, lambda c, p: book.rate(c, plan=p), NOW, 35, book=book)
    assert [r["service"] for r in res.rated] == ["voice"]


def test_call_centre_stages_are_rated_by_their_own_rules_through_the_charge_stage():
    """IVR -> agent -> post-processing of one 0800 call (one correlation id), each stage its own
    item; a dedicated operator's agent minutes are included in the subscription (zero)."""
    cmd = {"command_id": "p", "account": "CC1", "action": "provision", "credit_micros": 100_000_000,
           "profile": None, "timezone": "Europe/Amsterdam", "period_kind": "monthly", "soft_limit_pct": 80,
           "tariff_plan": "callcentre", "always_allowed": None, "issued_ms": NOW}
    table = Table()
    run(table, [Msg("account.control", 0, 0, NOW, codecs.encode(codecs.CONTROL, cmd))])

    def stage(leg, billsec, **extra):
        r = raw(f"cc-{leg}-{sorted(extra.items())}", "08001234", billsec, account="CC1")
        r.update(direction="inbound", caller="0201234567", leg=leg, correlation_id="call-42", **extra)
        return canonical(r)

    legs = [stage("ivr", 45), stage("agent", 125), stage("post", 30),
            stage("agent", 125, operator_location="remote"), stage("agent", 125, operator_dedicated=True)]
    res = run(table, [batch_msg(7, legs)])
    got = {(r["leg"], r["destination"]): r["cost_micros"] for r in res.rated if r["service"] == "voice"}
    # Hand arithmetic from the callcentre plan (rounding half-even to 4 decimals):
    #   ivr 0.01/min per 1 s: 45 s -> 0.0075; agent_nl 0.04/min per 6 s: 126 s -> 0.084;
    #   post 0.02/min per 60 s: 60 s -> 0.02; agent_remote_nl 0.03/min per 6 s: 126 s -> 0.063;
    #   agent_dedicated: 0.
    assert got == {("ivr", "ivr"): 7_500, ("agent", "agent_nl"): 84_000, ("post", "post"): 20_000,
                   ("agent", "agent_remote_nl"): 63_000, ("agent", "agent_dedicated"): 0}
    assert {r["correlation_id"] for r in res.rated if r["service"] == "voice"} == {"call-42"}
