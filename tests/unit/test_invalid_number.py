"""A bare number valid in neither reading (national, or international without '+') is
rejected invalid_number, unless the source relaxes it with accept_possible_numbers."""
from __future__ import annotations

import phonenumbers
import pytest

from streams.core.normalize import normalize
from streams.core.numbering import cache_clear, lookup
from streams.core.reasons import Reason, RejectError
from streams.core.sources import NumberingContext, SourceDirectory

NOW = 1_760_000_000_000
NL = NumberingContext()


def raw(called: str) -> dict:
    start = NOW - 3_600_000
    return {"switch_id": "intl-sw", "call_id": "c-1", "account": "acct-1", "direction": "outbound",
            "caller": "31201234567", "called": called, "start_ms": start, "answer_ms": start + 5_000,
            "end_ms": start + 65_000, "duration_s": 65, "billsec_s": 60, "disposition": "ANSWERED"}


def test_the_reported_number_is_valid_in_neither_reading():
    # Independent of the code under test: phonenumbers itself says neither reading is valid.
    assert not phonenumbers.is_valid_number(phonenumbers.parse("+313320123456"))   # Dutch national reading
    assert not phonenumbers.is_valid_number(phonenumbers.parse("+3320123456"))     # international reading


def test_valid_in_neither_reading_is_invalid_number_by_default():
    cache_clear()
    with pytest.raises(RejectError) as info:
        normalize(raw("3320123456"), NL, now_ms=NOW)
    assert info.value.reason is Reason.INVALID_NUMBER and "called" in info.value.detail
    # The switch's other numbers, international without '+', still read as before.
    assert normalize(raw("33123456789"), NL, now_ms=NOW)["called_e164"] == "+33123456789"
    assert normalize(raw("201234567"), NL, now_ms=NOW)["called_e164"] == "+31201234567"


def test_a_source_may_relax_it():
    ctx = SourceDirectory.from_dict({"switches": {"intl-sw": {"accept_possible_numbers": True}}}).context_for("intl-sw")
    assert ctx.accept_possible_numbers and ctx != NL and hash(ctx) != hash(NL)
    out = normalize(raw("3320123456"), ctx, now_ms=NOW)
    assert (out["called_e164"], out["called_type"]) == ("+313320123456", "unknown")
    # The strict default is unaffected by the relaxed context's cached answer.
    assert isinstance(lookup("3320123456", NL), str)


def test_the_setting_must_be_a_boolean():
    with pytest.raises(ValueError):
        NumberingContext(accept_possible_numbers="yes")
