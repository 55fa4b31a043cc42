"""Report and analyst SQL, checked as strings (no ClickHouse needed)."""
from __future__ import annotations

import pytest

from sinks.clickhouse import analyst
from sinks.reports import queries as Q


def test_literal_escaping():
    assert Q.lit("acc1") == "'acc1'"
    assert Q.lit("o'brien\\") == "'o\\'brien\\\\'"
    assert Q.lit_list(["a", "b'"]) == "('a', 'b\\'')"
    with pytest.raises(TypeError):
        Q.lit(5)


def test_itemized_reads_final_in_time_order_and_escapes():
    sql = Q.itemized_sql("db", "a'; DROP TABLE x; --", "2026-11", service_user="u1")
    assert "FROM `db`.`cdr_rated` FINAL" in sql
    assert "account = 'a\\'; DROP TABLE x; --'" in sql
    assert "period = '2026-11'" in sql and "service_user = 'u1'" in sql
    assert sql.endswith("ORDER BY start_time, cdr_key")
    assert "service_user" not in Q.itemized_sql("db", "a", "p").split("WHERE")[1]


def test_every_rollup_reads_deduplicated_rows():
    # The rollups must read FINAL (or a view over it): a plain read double counts retries on 18.16.
    for build in (Q.daily_account_select, Q.daily_user_select, Q.period_account_select,
                  Q.period_user_select, Q.current_spend_account_select, Q.current_spend_user_select,
                  Q.top_destinations_select, Q.itemized_select):
        assert "`db`.`cdr_rated` FINAL" in build("db"), build.__name__
    assert "`db`.`barring_events` FINAL" in Q.barring_history_select("db")
    assert "toInt64(sum(cost_micros))" in Q.daily_user_select("db")
    assert "GROUP BY account, service_user, day" in Q.daily_user_select("db")


def test_money_leaves_as_integer_micros():
    for sql in (Q.user_totals_sql("db"), Q.spend_by_account_sql("db"), Q.totals_sql("db"),
                Q.spend_over_time_sql("db"), Q.top_destinations_sql("db")):
        assert "cost_micros" in sql
        assert "toFloat" not in sql and "Float64" not in sql


def test_optional_period_filters():
    assert "WHERE period = '2026-11'" in Q.user_totals_sql("db", "2026-11")
    assert "WHERE" not in Q.user_totals_sql("db").split(") ")[-1]
    assert "LIMIT 30" in Q.spend_by_account_sql("db", limit=30)
    assert "toStartOfDay" in Q.spend_over_time_sql("db", "day")
    with pytest.raises(KeyError):
        Q.spend_over_time_sql("db", "minute")
    assert "reason IN ('soft_limit', 'hard_limit')" in Q.barring_history_sql("db", breaches_only=True)
    assert "ORDER BY at_time, account, seq" in Q.barring_history_sql("db")


def test_masked_select_has_no_raw_number_column():
    sql = Q.masked_cdr_select("db", "s3cret")
    select = sql.split(" FROM ")[0]
    cols = [c.strip().split(" AS ")[-1] for c in select[len("SELECT "):].split(", ") if " AS " in c or c.isidentifier()]
    for raw in Q.NUMBER_COLUMNS:
        assert raw not in cols
        assert f"{raw}_masked" in cols and f"{raw}_id" in cols
    assert "sipHash64(concat('s3cret', caller_e164))" in sql
    assert "'****'" in sql


def test_analyst_views_and_gated_access():
    stmts = analyst.analyst_views_sql("db", (18, 16, 1), salt="x")
    assert stmts[0] == "CREATE DATABASE IF NOT EXISTS `db_analyst`"
    assert all(s.startswith("CREATE VIEW IF NOT EXISTS `db_analyst`.") for s in stmts[1:])
    assert all("OR REPLACE" not in s for s in stmts)  # 18.16 has no CREATE OR REPLACE VIEW
    assert [m[0] for m in analyst.MIGRATIONS] == [101, 102]

    with pytest.raises(ValueError, match="users.xml"):
        analyst.analyst_access_sql("db", (18, 16, 1), "pw")
    modern = analyst.analyst_access_sql("db", (26, 9, 2), "pw")
    assert "GRANT SELECT ON `db_analyst`.* TO `cdrflow_analyst`" in modern
    assert any("readonly = 1" in s for s in modern)
    assert any("MODIFY SQL SECURITY DEFINER" in s for s in modern)
    assert not any("'pw'" in s for s in modern)  # only the hash is ever written
    mid = analyst.analyst_access_sql("db", (23, 8, 1), "pw")
    grant = next(s for s in mid if s.startswith("GRANT SELECT(") and "cdr_rated" in s)
    for raw in Q.NUMBER_COLUMNS:
        assert raw not in grant

    xml = analyst.users_xml_snippet("db", "pw")
    assert "<database>db_analyst</database>" in xml and "<readonly>1</readonly>" in xml
    assert ">pw<" not in xml
    from xml.etree import ElementTree

    ElementTree.fromstring(xml)
