"""Issue 16.2 on the real local stack: a message set whose canonical batch, and whose charge
stage's rated output, would exceed the producer's request limit is split and fully rated; the
worker stays alive and balanced."""
from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams import codecs, topics
from streams.core.charge import utc_now_ms
from streams.local.stack import LocalStack, wait_until
from streams.publisher import Publisher
from streams.simulator import CdrGenerator, make_accounts
from tests.support.pipeline import read_topic

pytestmark = pytest.mark.integration
LIMIT = 256 * 1024


def test_batch_over_the_producer_limit_is_split_and_fully_rated(tmp_path):
    # Chunking by count is switched off, so only the byte limit can split a batch. The charge
    # stage takes batches of many canonical messages (CDRFLOW_BATCH_MAX as shipped): their rated
    # records, and an account's new keys, are over the limit, so it must split its work too.
    st = LocalStack(tmp_path / "stack", workers=1, extra_env={
        "CDRFLOW_PRODUCER_MAX_REQUEST_BYTES": str(LIMIT), "CDRFLOW_NORMALIZE_CHUNK_RECORDS": "100000"})
    st.start()
    try:
        st.wait_workers_ready(120)
        pub = Publisher(st.client_conf)
        accounts = make_accounts(2, seed=41)
        now = utc_now_ms()
        st.provision(pub, accounts, now)
        records = CdrGenerator(accounts, now, seed=42).take(12000)
        files = [codecs.encode_container(codecs.SWITCH_CDR, records[i:i + 4000], codec="deflate")
                 for i in (0, 4000, 8000)]
        # Each file makes ~760 KB of canonical CDRs (~550 KB rated) per account partition: over
        # the limit before the fix, in the normaliser and in the charge stage.
        pub.raw(files)
        pub.flush()
        wait_until(lambda: st.sink_status()["landed"].get("cdr_rated", 0) >= 12000, 240,
                   what="12000 rated rows", check=st.check_alive)
        sizes = [len(codecs.encode_batch(codecs.CANONICAL_BATCH, rec["records"]))
                 for _p, _o, _k, _n, rec in read_topic(st.client_conf, topics.NORMALIZED)]
        assert len(sizes) >= 12 and max(sizes) <= LIMIT
        rated = [rec["records"] for _p, _o, _k, _n, rec in read_topic(st.client_conf, topics.RATED)]
        assert max(len(codecs.encode_batch(codecs.RATED_BATCH, r)) for r in rated) <= LIMIT
        assert len({r["cdr_key"] for batch in rated for r in batch}) == 12000
        stats = st.worker_stats("worker-1")
        assert stats["records_in"] == stats["normalized"] + stats.get("rejected_normalize", 0) == 12000
        # The charge stage did take batches over the limit, and charged them a slice at a time
        # (a whole batch's account value once made a 295 KB changelog record and killed it).
        assert stats.get("charge_extra_slices", 0) > 0, stats
        st.check_alive()
    finally:
        st.stop()


def test_one_big_file_for_one_account_does_not_hold_the_others_back(tmp_path):
    """Issue 16, finding 3: a 50,000-CDR container for one account, or one CDR with a 5.8 MB
    field, kept other accounts' CDRs published after it from being rated for over 3 minutes.
    Now the others wait at most about as long as the big file's own processing; the big field is
    rejected with its reason. A bound far from both (the old 3 minutes, and the ~7 s this takes
    on the project's 2-core box), so noise cannot make it flap."""
    st = LocalStack(tmp_path / "stack", workers=1)
    st.start()
    try:
        st.wait_workers_ready(120)
        pub = Publisher(st.client_conf)
        accounts = make_accounts(6, seed=3, heavy_share=0.0)
        now = utc_now_ms()
        st.provision(pub, accounts, now)
        heavy, others = accounts[0], accounts[1:]
        big = CdrGenerator([heavy], now, seed=5).take(50_000)
        small = CdrGenerator(others, now, seed=6).take(200)
        fat = dict(small[0], call_id="fat-" + "x" * 5_800_000)
        start = time.monotonic()
        pub.cdrs(big, "batch", batch_size=len(big))
        pub.cdrs([fat], "single")
        pub.flush()
        others_sent = time.monotonic()
        pub.cdrs(small, "single")
        pub.flush()
        rated_at = when_all_rated(st.client_conf, {(heavy.account, r["call_id"]) for r in big},
                               {(r["account"], r["call_id"]) for r in small}, timeout_s=240)
        big_own_s = rated_at["big"] - start
        others_wait_s = rated_at["others"] - others_sent
        assert others_wait_s <= big_own_s + 20, (others_wait_s, big_own_s)
        rejects = [rec for _p, _o, _k, _n, rec in read_topic(st.client_conf, topics.REJECTED)]
        assert [(r["reason"], r["stage"]) for r in rejects] == [("oversize_field", "normalize")]
        assert len(rejects[0]["raw"]) > 5_800_000
        st.check_alive()
    finally:
        st.stop()


def when_all_rated(conf: dict, big: set, others: set, timeout_s: float) -> dict:
    """When the last of each set was seen on cdr.rated (monotonic clock)."""
    c = Consumer({**conf, "group.id": f"test-big-{time.time_ns()}", "enable.auto.commit": False})
    parts = c.list_topics(topics.RATED, timeout=10).topics[topics.RATED].partitions
    c.assign([TopicPartition(topics.RATED, p, OFFSET_BEGINNING) for p in parts])
    left = {"big": set(big), "others": set(others)}
    done: dict = {}
    deadline = time.monotonic() + timeout_s
    try:
        while len(done) < 2:
            assert time.monotonic() < deadline, {k: len(v) for k, v in left.items()}
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            for r in codecs.decode(m.value(), max_items=1 << 20)[1]["records"]:
                for name, want in left.items():
                    want.discard((r["account"], r["call_id"]))
                    if not want and name not in done:
                        done[name] = time.monotonic()
    finally:
        c.close()
    return done
