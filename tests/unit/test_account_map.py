"""CDRs without an account code: mapped by switch, trunk, DID or caller range, else a
recyclable ``unmapped_account`` reject that a later rule turns into a rated CDR."""
from __future__ import annotations

import pytest

from streams import codecs
from streams.core.account_map import AccountMap
from streams.core.normalize import normalize
from streams.core.reasons import RECYCLABLE, Reason, RejectError
from streams.core.sources import NumberingContext
from streams.mediation import Normalizer, load_sources
from streams.msg import Msg

NOW = 1_760_000_000_000
NL = NumberingContext()


def raw(**over):
    start = NOW - 3_600_000
    r = {"switch_id": "ast-1", "call_id": "c-1", "leg": "A", "partial_seq": 0, "account": "",
         "direction": "outbound", "caller": "0201234567", "called": "0612345678", "trunk": "kpn-trunk",
         "start_ms": start, "answer_ms": start + 5_000, "end_ms": start + 65_000, "duration_s": 65,
         "billsec_s": 60, "disposition": "ANSWERED", "service": "voice"}
    r.update(over)
    return r


RULES = AccountMap.from_list([
    {"account": "by-switch", "switch": "ast-1"},
    {"account": "by-trunk", "switch": "ast-1", "trunk": "kpn-trunk"},
    {"account": "by-did-block", "did": "+31201234500..+31201234599"},
    {"account": "by-did-one", "did": "+31201234567"},
    {"account": "by-caller-prefix", "caller": "+3120123*"},
    {"account": "by-caller-range", "caller": "+31201234560..+31201234569"},
])


@pytest.mark.parametrize("how", [None, "", "   "])
def test_no_account_code_and_no_rule_is_a_recyclable_unmapped_account(how):
    rec = raw(account=how)
    with pytest.raises(RejectError) as info:
        normalize(rec, NL, now_ms=NOW)
    assert info.value.reason is Reason.UNMAPPED_ACCOUNT      # was missing_field, which is not recyclable
    assert Reason.UNMAPPED_ACCOUNT in RECYCLABLE
    with pytest.raises(RejectError) as info:
        normalize(raw(account=how, switch_id="other", trunk=None, caller="0209999999"), NL, now_ms=NOW,
                  account_map=RULES)
    assert info.value.reason is Reason.UNMAPPED_ACCOUNT and "'other'" in info.value.detail


@pytest.mark.parametrize(("over", "account"), [
    ({"caller": "0209999999", "trunk": "other"}, "by-switch"),
    ({"caller": "0209999999"}, "by-trunk"),
    ({"caller": "0201234500"}, "by-caller-prefix"),            # caller beats trunk
    ({"caller": "0201234563"}, "by-caller-range"),             # the narrower caller range wins
    ({"direction": "inbound", "caller": "0612345678", "called": "0201234599"}, "by-did-block"),
    ({"direction": "inbound", "caller": "0612345678", "called": "0201234567"}, "by-did-one"),
    # A DID rule is about inbound calls: an outbound call *to* that number is not its owner's.
    ({"caller": "0209999999", "called": "0201234567"}, "by-trunk"),
    # A caller rule is about outbound calls: an inbound call *from* that number is not its owner's.
    ({"direction": "inbound", "caller": "0201234563", "called": "0612345678"}, "by-trunk"),
])
def test_most_specific_rule_wins(over, account):
    assert normalize(raw(**over), NL, now_ms=NOW, account_map=RULES)["account"] == account


def test_an_account_code_on_the_cdr_is_never_overridden():
    assert normalize(raw(account="acct-9"), NL, now_ms=NOW, account_map=RULES)["account"] == "acct-9"


@pytest.mark.parametrize("rules", [
    {"account": "a", "switch": "x"},                                 # not a list
    [{"switch": "x"}],                                               # no account
    [{"account": "a"}],                                              # no condition
    [{"account": "a", "did": "0201234567"}],                         # not E.164
    [{"account": "a", "caller": "+31201234599..+31201234500"}],      # backwards
    [{"account": "a", "caller": "+312012345..+31201234599"}],        # unequal lengths
    [{"account": "a", "did": "+31201234567", "caller": "+31201234567"}],
    [{"account": "a", "switch": "x", "colour": "red"}],
])
def test_bad_rules_are_refused_at_load(rules):
    with pytest.raises(ValueError):
        AccountMap.from_list(rules)


def test_sources_file_rule_maps_and_recycling_the_reject_rates_it(tmp_path):
    rec = raw(switch_id="ast-7", trunk=None)
    msg = Msg("cdr.raw", 0, 5, NOW, codecs.encode(codecs.SWITCH_CDR, {**rec, "account": ""}))
    # Before the rule: a recyclable reject carrying the record's bytes.
    first = Normalizer(8, load_sources(None)).run([msg], NOW)
    assert [r["reason"] for r in first.rejects] == ["unmapped_account"]
    reject = first.rejects[0]
    # The operator adds a rule; `cdrflow recycle` re-publishes the reject's raw bytes.
    src = tmp_path / "sources.yaml"
    src.write_text("default: {country: NL}\naccount_map:\n  - {account: acct-ast7, switch: ast-7}\n")
    again = Normalizer(8, load_sources(src)).run([Msg("cdr.raw", 1, 9, NOW, reject["raw"])], NOW)
    assert again.rejects == [] and again.normalized == 1
    (cdr,) = [c for part in again.by_partition.values() for c in part]
    assert cdr["account"] == "acct-ast7" and cdr["call_id"] == "c-1"
