"""Issue 16.2 on the real local stack: a message set whose canonical batch would exceed the
producer's request limit is split and fully rated; the worker stays alive and balanced."""
from __future__ import annotations

import pytest

from streams import codecs, topics
from streams.core.charge import utc_now_ms
from streams.local.stack import LocalStack, wait_until
from streams.publisher import Publisher
from streams.simulator import CdrGenerator, make_accounts
from tests.support.pipeline import read_topic

pytestmark = pytest.mark.integration
LIMIT = 512 * 1024


def test_batch_over_the_producer_limit_is_split_and_fully_rated(tmp_path):
    # Chunking by count is switched off, so only the byte limit can split the batch. One event
    # per batch: the charge stage combines the batches it takes into one rated output, and its
    # own outputs are not split yet (see the input-safety note), so it must take them singly.
    st = LocalStack(tmp_path / "stack", workers=1, extra_env={
        "CDRFLOW_PRODUCER_MAX_REQUEST_BYTES": str(LIMIT), "CDRFLOW_NORMALIZE_CHUNK_RECORDS": "100000",
        "CDRFLOW_BATCH_MAX": "1"})
    st.start()
    try:
        st.wait_workers_ready(120)
        pub = Publisher(st.client_conf)
        accounts = make_accounts(2, seed=41)
        now = utc_now_ms()
        st.provision(pub, accounts, now)
        records = CdrGenerator(accounts, now, seed=42).take(8000)
        files = [codecs.encode_container(codecs.SWITCH_CDR, records[i:i + 4000], codec="deflate") for i in (0, 4000)]
        # Each file makes ~760 KB of canonical CDRs per account partition: over the limit before the fix.
        pub.raw(files)
        pub.flush()
        wait_until(lambda: st.sink_status()["landed"].get("cdr_rated", 0) >= 8000, 240,
                   what="8000 rated rows", check=st.check_alive)
        sizes = [len(codecs.encode_batch(codecs.CANONICAL_BATCH, rec["records"]))
                 for _p, _o, _k, _n, rec in read_topic(st.client_conf, topics.NORMALIZED)]
        assert len(sizes) >= 8 and max(sizes) <= LIMIT
        stats = st.worker_stats("worker-1")
        assert stats["records_in"] == stats["normalized"] + stats.get("rejected_normalize", 0) == 8000
        st.check_alive()
    finally:
        st.stop()
