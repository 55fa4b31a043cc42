"""The sink's SQL interface: statement splitting and identities, without chdb."""
from __future__ import annotations

import pytest

from sinks.sql_http import Access, Refused, analyst_check, one_statement


def test_one_statement_refuses_a_second_statement_outside_quotes_and_comments():
    assert one_statement("SELECT 1;  ") == "SELECT 1"
    assert one_statement("SELECT ';' AS a -- ; x\n") == "SELECT ';' AS a -- ; x\n"
    assert one_statement("SELECT `a;b` /* ; */ FROM t") == "SELECT `a;b` /* ; */ FROM t"
    for text in ("SELECT 1; DROP TABLE t", "SELECT 'it\\'s'; SELECT 2"):
        with pytest.raises(Refused):
            one_statement(text)


def test_analyst_check_refuses_writes_files_and_raw_tables_before_explaining_them():
    seen = []

    def explain(text):
        seen.append(text)
        return "QUERY id: 0\n  JOIN TREE\n    TABLE id: 3, alias: __table1, table_name: db.cdr_rated\n"

    for sql in ("INSERT INTO db.cdr_rated SELECT 1", "SELECT 1 INTO OUTFILE 'x'", "DROP TABLE db.x"):
        with pytest.raises(Refused):
            analyst_check(sql, explain, "db_analyst", frozenset())
    assert seen == []   # nothing reached the server
    with pytest.raises(Refused, match="db.cdr_rated"):
        analyst_check("SELECT * FROM cdr_rated", explain, "db_analyst", frozenset())
    ok = lambda t: "TABLE id: 3, table_name: db_analyst.cdr_masked\n" if "QUERY TREE" in t else "Function count\n"  # noqa: E731
    analyst_check("SELECT count() FROM cdr_masked", ok, "db_analyst", frozenset({"file"}))
    with pytest.raises(Refused, match="file"):
        analyst_check("SELECT file('x')", lambda t: "Function file\n", "db_analyst", frozenset())


def test_access_checks_passwords_per_user():
    access = Access("op", "analyst", "an")
    assert access.identify("default", "op").role == "operator"
    assert access.identify("analyst", "an").role == "analyst"
    for user, pw in (("default", "an"), ("analyst", ""), ("nobody", "op")):
        with pytest.raises(Refused):
            access.identify(user, pw)
    # No analyst password configured: no analyst user at all.
    with pytest.raises(Refused):
        Access("op", "analyst", None).identify("analyst", "")


def test_customer_views_filter_by_grants_and_leave_out_views_without_an_account():
    from sinks.sql_http import customer_views_sql, grant_condition
    from streams.portal.users import Grant, User

    u = User("alice", "x", {"acc1": Grant("acc1", frozenset({"view"})),
                            "it's": Grant("it's", frozenset({"view"}), frozenset({"u1"}))})
    assert grant_condition(u, True) == "account IN ('acc1') OR (account = 'it\\'s' AND service_user IN ('u1'))"
    assert grant_condition(u, False) == "account IN ('acc1')"
    assert grant_condition(User("nobody", "x"), True) == "0"
    assert grant_condition(User("off", "x", dict(u.grants), disabled=True), True) == "0"
    stmts = customer_views_sql("d_analyst", "d_customer_x", {"cdr_masked": {"account", "service_user"},
                                                             "totals": {"n"}}, u)
    assert stmts[1:] == ["CREATE OR REPLACE VIEW `d_customer_x`.`cdr_masked` AS SELECT * FROM "
                         "`d_analyst`.`cdr_masked` WHERE account IN ('acc1') OR "
                         "(account = 'it\\'s' AND service_user IN ('u1'))"]


def test_a_portal_user_cannot_take_the_operators_or_analysts_name():
    class Store:
        def authenticate(self, name, password):
            return object()          # would accept anyone

    access = Access("op-pw", "analyst", "an-pw", Store())
    assert access.identify("carol", "pw").role == "customer"
    for name in ("default", "analyst"):
        with pytest.raises(Refused):
            access.identify(name, "pw")
