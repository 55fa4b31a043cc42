"""CDR keys: injective field encoding (issue 15.2) and stability of keys stored before it."""
from __future__ import annotations

from hashlib import blake2b

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core.keys import cdr_key, key_material, legacy_cdr_key, legacy_key_of


def v1_key(switch_id: str, call_id: str, leg: str, seq: int) -> str:
    # The pre-fix scheme, written out here so the test does not depend on the code under test.
    return blake2b(f"{switch_id}\x1f{call_id}\x1f{leg}\x1f{seq}".encode(), digest_size=16).hexdigest()


def test_separator_inside_a_field_does_not_collide():
    # Issue 15.2: under v1 both tuples hashed "sw\x1fc\x1fB\x1fA\x1f0".
    assert v1_key("sw", "c\x1fB", "A", 0) == v1_key("sw", "c", "B\x1fA", 0)
    assert cdr_key("sw", "c\x1fB", "A", 0) != cdr_key("sw", "c", "B\x1fA", 0)
    # The escape character itself cannot be used to forge a separator either.
    assert cdr_key("sw", "c\x1b", "\x1fA", 0) != cdr_key("sw", "c\x1b\x1f", "A", 0)


def test_keys_of_clean_fields_are_unchanged_so_stored_keys_stay_valid():
    for t in [("sw-ams-1", "call-1", "A", 0), ("fs", "a8f5-77@10.0.0.1", "agent", 3), ("x", "y", "B", 2**31 - 1)]:
        assert cdr_key(*t) == v1_key(*t)
        assert legacy_cdr_key(*t) is None


def test_legacy_key_of_a_control_character_tuple_is_its_v1_key():
    t = ("sw", "c\x1fB", "A", 0)
    assert legacy_cdr_key(*t) == v1_key(*t) != cdr_key(*t)
    cdr = {"switch_id": "sw", "call_id": "c\x1fB", "leg": "A", "partial_seq": 0}
    assert legacy_key_of(cdr) == v1_key(*t)


text = st.text(alphabet=st.sampled_from(["a", "B", "\x1f", "\x1b", "é", "0"]), max_size=6)
ident = st.tuples(text, text, text, st.integers(min_value=0, max_value=2**31 - 1))


@settings(max_examples=500, deadline=None)
@given(ident, ident)
def test_distinct_field_tuples_give_distinct_keys(a, b):
    if a != b:
        assert key_material(*a) != key_material(*b)
        assert cdr_key(*a) != cdr_key(*b)
    else:
        assert cdr_key(*a) == cdr_key(*b)


def test_a_cdr_billed_under_its_v1_key_is_still_a_duplicate_after_the_upgrade():
    """Issue 15.2, "keep old keys recognisable": a CDR whose call id holds the separator was
    billed under its v1 key before the upgrade; the re-sent copy (v2 key) must not bill again."""
    from tests.unit.test_charge_keys import Stores, batch_msg, canonical, provision_msg, spend

    s = Stores()
    s.run([provision_msg(0)])
    old = canonical("c\x1fB", 61)
    old["cdr_key"] = v1_key("sw", "c\x1fB", "A", 0)          # as keys v1 named it
    first = s.run([batch_msg(10, [old])])
    assert len(first.rated) == 1 and spend(s) == 88_000       # 61 s -> 66 s at 0.08/min

    resent = canonical("c\x1fB", 61)
    assert resent["cdr_key"] != old["cdr_key"]
    again = s.run([batch_msg(11, [resent])])
    assert again.rated == [] and again.duplicates == 1 and spend(s) == 88_000
