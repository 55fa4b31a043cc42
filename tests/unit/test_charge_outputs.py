"""The charge stage's outputs fit one producer request each (issue 16.2, charge side), and a
redelivered batch re-emits the same records in the same order."""
from __future__ import annotations

from hashlib import blake2b

import orjson

from streams import codecs, topics
from streams.batching import byte_slices
from streams.charge_outputs import after_store, before_store
from streams.core.charge import make_reject
from streams.core.reasons import Reason
from tests.unit.test_charge_keys import Stores, batch_msg, canonical, provision_msg

LIMIT = 64 * 1024


def calls(n: int, tag: str) -> list[dict]:
    base = canonical("c0", 61)
    return [dict(base, call_id=f"{tag}{i}", cdr_key=blake2b(f"{tag}{i}".encode(), digest_size=16).hexdigest())
            for i in range(n)]


def rated_of(outs) -> list[tuple[str, int]]:
    got = []
    for o in outs:
        if o.topic == topics.RATED:
            assert o.key is None          # sent to the input's partition
            got += [(r["cdr_key"], r["cost_micros"]) for r in codecs.decode(o.value)[1]["records"]]
    return got


def test_a_batch_whose_rated_records_exceed_the_limit_is_sent_in_fitting_slices_in_order():
    s = Stores()
    s.run([provision_msg(0)])
    cdrs = calls(1_500, "a")
    msgs = [batch_msg(1 + i, cdrs[i * 500:(i + 1) * 500]) for i in range(3)]
    res = s.run(msgs)
    assert len(res.rated) == 1_500
    # Old agent: one message of every rated record, several times the limit.
    assert len(codecs.encode_batch(codecs.RATED_BATCH, res.rated)) > 4 * LIMIT
    outs = list(before_store(res, LIMIT))
    rated_msgs = [o for o in outs if o.topic == topics.RATED]
    assert len(rated_msgs) >= 5 and all(len(o.value) <= LIMIT for o in outs)
    # 61 s billed as 66 s at 0.08/min: 66 * 80_000 / 60 = 88_000 micros each.
    assert rated_of(outs) == [(c["cdr_key"], 88_000) for c in cdrs]


def test_a_redelivered_batch_re_emits_the_same_records_in_the_same_order():
    s = Stores()
    s.run([provision_msg(0)])
    cdrs = calls(1_200, "b")
    msgs = [batch_msg(1, cdrs[:600]), batch_msg(2, cdrs[600:])]
    # The worker crashed after sending part of the slices, before storing the states.
    first = rated_of(before_store(s.run(msgs, write_keys=False, write_states=False), LIMIT))
    second = rated_of(before_store(s.run(msgs), LIMIT))
    # And once more after the state was stored (a crash before the commit): a redelivery.
    again = s.run(msgs)
    assert again.redelivered == 1_200
    third = rated_of(before_store(again, LIMIT))
    assert first == second == third and len(first) == 1_200
    assert sum(s.accounts["A1"]["spend"].values()) == 1_200 * 88_000


def test_a_charge_reject_with_big_raw_bytes_is_cut_to_fit_and_states_follow_the_store():
    s = Stores()
    s.run([provision_msg(0)])
    big = dict(calls(1, "r")[0], account="NOPE", raw=b"z" * (3 * LIMIT))
    res = s.run([batch_msg(5, [big])])
    assert [r["reason"] for r in res.rejects] == [Reason.UNKNOWN_ACCOUNT.value]
    outs = list(before_store(res, LIMIT))
    assert [o.topic for o in outs] == [topics.REJECTED] and len(outs[0].value) <= LIMIT
    back = codecs.decode(outs[0].value)[1]
    assert back["raw"] == b"z" * len(back["raw"]) and f"of {3 * LIMIT} bytes" in back["detail"]
    # A reject that fits is sent as it is.
    small = make_reject(Reason.UNKNOWN_ACCOUNT, "x", "charge", "cdr.normalized", 0, 1, 0, b"y", 0)
    res.rejects = [small]
    assert list(before_store(res, LIMIT))[0].value == codecs.encode(codecs.REJECTED, small)

    res = s.run([batch_msg(6, calls(2, "s"))])
    after = list(after_store(res, s.accounts, 0))
    assert [(o.topic, o.key) for o in after] == [(topics.STATE, b"A1")]
    assert codecs.decode(after[0].value)[1]["spend_micros"] == 2 * 88_000


def test_input_is_charged_in_byte_bounded_slices_of_whole_messages():
    sizes = [100, 100, 300, 50, 50, 50, 900, 10]
    got = [list(p) for p in byte_slices(sizes, lambda n: n, 300)]
    assert got == [[100, 100], [300], [50, 50, 50], [900], [10]]
    assert [x for p in got for x in p] == sizes
    assert list(byte_slices([], len, 10)) == []


def test_an_account_value_carries_less_than_the_input_it_was_charged_from():
    # Why slicing the input bounds the account value's changelog record: the new keys it
    # carries (kpend) take fewer bytes than the canonical CDRs they came from, so one slice of
    # at most N input bytes writes an account value under N / 2.
    s = Stores()
    s.run([provision_msg(0)])
    before = len(orjson.dumps(s.accounts["A1"]))
    msg = batch_msg(1, calls(2_000, "k"))
    s.run([msg])
    grown = len(orjson.dumps(s.accounts["A1"])) - before
    # 48 hex chars per key; these CDRs are lean (raw of 1 byte, 174 bytes each), real ones
    # carry their switch bytes and are larger.
    assert 2_000 * 48 <= grown < len(msg.value) // 2, (grown, len(msg.value))
