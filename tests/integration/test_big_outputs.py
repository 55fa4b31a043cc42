"""Issue 16.2 on the real local stack: a message set whose canonical batch, and whose charge
stage's rated output, would exceed the producer's request limit is split and fully rated; the
worker stays alive and balanced."""
from __future__ import annotations

import pytest

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
