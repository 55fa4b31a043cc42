"""Currency (issue 10, "missing that operators expect"): the tariff's currency on every rated row
and on the account; a plan and an account in different currencies is refused (at provisioning
with a reply, at rating with reject reason currency_mismatch). streams/core/currency.py."""
from __future__ import annotations

import pytest

from streams import codecs
from streams.core import credit
from streams.core.reasons import RECYCLABLE, Reason
from streams.core.tariff import parse_tariff_text
from streams.core.tariff.loader import TariffError
from streams.msg import Msg
from streams.pipeline import charge_partition
from tests.unit.test_charge_batch import NOW, batch_msg, canonical, raw

TARIFF = """
format: cdrflow-tariff/1
currency: {cur}
plans:
  p:
    timezone: Europe/Amsterdam
    versions:
      - version: "v1"
        effective_from: "2000-01-01T00:00:00+01:00"
        destinations:
          nl_mobile:
            prefixes: ["316"]
            groups: [{{start: 0, rate: "0.60", unit: 60, increment: 60}}]
"""


def book(cur="USD"):
    return parse_tariff_text(TARIFF.format(cur=cur), "cur.yaml", "yaml")


def provision(offset, currency=None, plan="p"):
    cmd = {"command_id": f"p{offset}", "account": "A1", "action": "provision", "credit_micros": 10_000_000,
           "profile": None, "timezone": "Europe/Amsterdam", "period_kind": "monthly", "soft_limit_pct": 80,
           "tariff_plan": plan, "always_allowed": None, "currency": currency, "issued_ms": NOW}
    return Msg("account.control", 0, offset, NOW, codecs.encode(codecs.CONTROL, cmd))


def run(table, msgs, b):
    res, states = charge_partition(msgs, table.get, lambda cdr, plan: b.rate(cdr, plan=plan), NOW, 35, b)
    for a in res.touched:
        table[a] = states[a]
    return res


def test_the_tariff_files_currency_is_on_every_plan_and_absent_means_eur():
    assert book("USD").plan("p").currency == "USD"
    no_cur = TARIFF.format(cur="X").replace("currency: X\n", "")
    assert parse_tariff_text(no_cur, "c.yaml", "yaml").plan("p").currency == "EUR"
    with pytest.raises(TariffError, match="three-letter ISO 4217"):
        book("dollars")


def test_rated_row_and_account_carry_the_plans_currency():
    b, table = book("USD"), {}
    res = run(table, [provision(1), batch_msg(2, [canonical(raw("c1", "0612345678", 60))])], b)
    assert table["A1"]["cfg"]["currency"] == "USD"                 # taken from the plan at provisioning
    assert credit.snapshot(table["A1"], NOW)["currency"] == "USD"
    assert [(r["cost_micros"], r["currency"]) for r in res.rated] == [(600_000, "USD")]   # 1 min x 0.60
    # The row and the state encode with the schemas (fields with a default, read by older readers).
    codecs.encode(codecs.RATED, res.rated[0])
    assert res.replies and res.replies[0]["state"]["currency"] == "USD"


def test_provisioning_in_another_currency_than_the_plan_is_refused_with_the_reason():
    b, table = book("USD"), {}
    res = run(table, [provision(1, currency="EUR")], b)
    assert "A1" not in table
    assert [(r["outcome"], r["reason"]) for r in res.replies] == [("refused", "invalid_command")]
    assert "plan 'p' prices in USD, the account is billed in EUR" in res.replies[0]["detail"]
    res = run(table, [provision(2, currency="USD")], b)
    assert table["A1"]["cfg"]["currency"] == "USD" and res.replies[0]["outcome"] == "applied"


def test_a_plan_whose_currency_changed_rejects_the_accounts_cdrs_at_rating():
    table = {}
    run(table, [provision(1)], book("EUR"))                             # account billed in EUR
    res = run(table, [batch_msg(2, [canonical(raw("c1", "0612345678", 60))])], book("USD"))   # plan now USD
    assert res.rated == []
    assert [r["reason"] for r in res.rejects] == ["currency_mismatch"]
    assert "prices in USD, the account is billed in EUR" in res.rejects[0]["detail"]
    assert table["A1"]["spend"] == {} or sum(table["A1"]["spend"].values()) == 0       # nothing charged
    assert Reason.CURRENCY_MISMATCH in RECYCLABLE


def test_an_account_stored_before_currencies_accepts_the_plans_currency():
    table = {}
    run(table, [provision(1)], book("EUR"))
    table["A1"]["cfg"].pop("currency")                                  # as an old state was stored
    res = run(table, [batch_msg(2, [canonical(raw("c1", "0612345678", 60))])], book("USD"))
    assert [r["currency"] for r in res.rated] == ["USD"]
    assert credit.snapshot(table["A1"], NOW)["currency"] == ""


@pytest.mark.parametrize("version,guard", [((18, 16, 1), ""), ((26, 9, 2), "IF NOT EXISTS ")])
def test_migration_9_adds_the_currency_column_gated_for_18_16(version, guard):
    from sinks.clickhouse import ddl

    sql = {n: build("db", version) for n, _name, build in ddl.MIGRATIONS}
    assert all("currency" not in sql[n][0] for n in (1, 4, 7))             # their original SQL
    assert sql[9] == [f"ALTER TABLE `db`.`{t}` ADD COLUMN {guard}currency String DEFAULT ''"
                      for t in ("cdr_rated", "cdr_commissions", "account_state_history")]


def test_the_itemised_bill_names_its_currency():
    from sinks.reports import itemized
    from sinks.reports import queries as Q

    assert "currency" in Q.itemized_sql("db", "a", "2026-11").split("FROM")[0]
    assert "currency" in itemized.EXPORT_COLUMNS
    assert itemized.currencies([{"currency": "USD"}, {"currency": "USD"}]) == "USD"
    assert itemized.currencies([{"currency": ""}, {"currency": "EUR"}, {"currency": "USD"}]) == "EUR/USD"


def test_account_create_currency_option_is_checked_before_sending():
    from streams.cli.account import provision as cli_provision
    from streams.cli.main import UserError

    assert cli_provision("A", "10", currency="usd")["currency"] == "USD"
    assert cli_provision("A", "10")["currency"] is None                 # the worker fills in the plan's
    with pytest.raises(UserError, match="ISO 4217"):
        cli_provision("A", "10", currency="dollars")
