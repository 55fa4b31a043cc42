"""Filters of `cdrflow account list` / GET /accounts (streams/account_api.py)."""
import pytest

from streams import account_api as A


def rec(account, profile="normal", spend=0, credit=10_000_000, period="2026-11"):
    return {"account": account, "profile": profile, "spend_micros": spend, "credit_micros": credit,
            "period": period}


RECS = [rec("B", "low_credit", 8_000_000), rec("A", "blocked", 10_000_001), rec("C", spend=7_999_999),
        rec("Z", credit=0), rec("OLD", period="2026-10")]


def names(f):
    return [r["account"] for r in A.select(RECS, f)]


def test_no_filter_lists_every_account_sorted_and_latest_wins():
    assert names(A.Filters()) == ["A", "B", "C", "OLD", "Z"]
    later = RECS + [rec("C", "blocked", 10_000_000)]
    assert [r["profile"] for r in A.select(later, A.Filters.parse(profile="blocked"))] == ["blocked", "blocked"]


def test_over_pct_is_exact_at_the_boundary():
    # 80 % of 10.00 is 8.00: 8_000_000 is at it, 7_999_999 (79.99999 %) is not; credit 0 is always over.
    assert names(A.Filters.parse(over_pct="80")) == ["A", "B", "Z"]
    assert names(A.Filters.parse(over_pct="101")) == ["Z"]           # 10_000_001 is 100.00001 %
    assert names(A.Filters.parse(over_pct="100")) == ["A", "Z"]


def test_profile_and_period_filters_combine():
    assert names(A.Filters.parse(profile="normal", period="2026-11")) == ["C", "Z"]
    assert names(A.Filters.parse(period="2026-10")) == ["OLD"]


@pytest.mark.parametrize("kw,msg", [({"profile": "vip"}, "profile must be one of"),
                                    ({"over_pct": "80.5"}, "whole percentage"),
                                    ({"over_pct": "-1"}, "whole percentage")])
def test_bad_filters_are_refused_with_the_reason(kw, msg):
    with pytest.raises(ValueError, match=msg):
        A.Filters.parse(**kw)


def test_row_adds_decimal_money_and_used_pct_rounded_down():
    r = A.row(rec("B", spend=8_888_888))
    assert (r["spend"], r["credit"], r["used_pct"]) == ("8.888888", "10.000000", "88.8")
    assert A.row(rec("Z", credit=0))["used_pct"] == "-"
