"""The Faust agents on the real local stack: batching, changelog partitions, bad input, the demo."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from streams import codecs, topics
from streams.core.charge import utc_now_ms
from streams.local.badinput import corpus
from streams.local.stack import LocalStack, wait_until
from streams.partitioning import partition_for
from streams.publisher import Publisher
from streams.simulator import CdrGenerator, make_accounts
from tests.support.pipeline import read_topic

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    st = LocalStack(tmp_path_factory.mktemp("stack"), workers=1)
    st.start()
    try:
        st.wait_workers_ready(120)
        yield st
    finally:
        st.stop()


def test_batches_land_and_changelog_partitions_line_up(stack):
    pub = Publisher(stack.client_conf)
    accounts = make_accounts(80, seed=21)
    now = utc_now_ms()
    stack.provision(pub, accounts, now)
    records = CdrGenerator(accounts, now, seed=22).take(3000)
    pub.cdrs(records[:1500], "batch", batch_size=250)
    pub.cdrs(records[1500:], "single")
    pub.flush()
    wait_until(lambda: stack.sink_status()["landed"].get("cdr_rated", 0) >= 3000, 180,
               what="3000 rated rows", check=stack.check_alive)

    # Every changelog record of the accounts table sits on the partition that owns its key, the
    # partition the normaliser and every murmur2 producer route that account to.
    changelog = read_topic_raw(stack.client_conf, topics.changelog_topic("cdrflow"))
    assert changelog, "the accounts table wrote no changelog"
    wrong = [(p, k) for p, k in changelog if p != partition_for(k.decode(), stack.partitions)]
    assert wrong == []
    assert {a.account for a in accounts} <= {k.decode() for _p, k in changelog}

    # Canonical batches: every account inside a batch belongs to the batch's partition.
    for part, _off, _key, name, rec in read_topic(stack.client_conf, topics.NORMALIZED):
        assert name == codecs.CANONICAL_BATCH
        assert {partition_for(c["account"], stack.partitions) for c in rec["records"]} == {part}


def read_topic_raw(conf, topic):
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
    import time

    c = Consumer({**conf, "group.id": f"raw-{time.time_ns()}", "enable.auto.commit": False})
    parts = c.list_topics(topic, timeout=10).topics[topic].partitions
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in parts])
    out, last = [], time.monotonic()
    try:
        while time.monotonic() - last < 1.5:
            m = c.poll(0.1)
            if m is None or m.error():
                continue
            last = time.monotonic()
            out.append((m.partition(), m.key()))
    finally:
        c.close()
    return out


def test_bad_inputs_end_as_rejects_with_reason_and_counts_balance(stack):
    pub = Publisher(stack.client_conf)
    accounts = make_accounts(5, seed=31)
    now = utc_now_ms()
    pub.commands(a.provision_command(now) for a in accounts)
    pub.flush()
    good = CdrGenerator(accounts, now, seed=32, switch_id="sw-bad-test").take(50)
    bad = corpus(good[0], now, oversize_bytes=None)
    before = stack.sink_status()["landed"]
    pub.cdrs(good, "single")
    pub.raw(b for _r, b in bad)
    pub.flush()
    target_rated = before.get("cdr_rated", 0) + 50
    target_rej = before.get("cdr_rejected", 0) + len(bad)
    wait_until(lambda: (lambda s: s.get("cdr_rated", 0) >= target_rated and s.get("cdr_rejected", 0) >= target_rej)(
        stack.sink_status()["landed"]), 120, what="good and bad inputs to land", check=stack.check_alive)
    rejects = [r for *_x, name, r in read_topic(stack.client_conf, topics.REJECTED)]
    bad_bytes = {b for _r, b in bad}
    mine = [r for r in rejects if r["raw"] in bad_bytes]
    got = Counter(r["reason"] for r in mine)
    want = Counter(reason.value for reason, _b in bad)
    assert got == want
    for r in mine:
        assert r["detail"] and r["source_topic"] == topics.RAW and r["source_offset"] >= 0
    # The worker never crashed and its books balance: in = normalised + rejected at normalisation.
    stats = stack.worker_stats("worker-1")
    assert stats["records_in"] == stats["normalized"] + stats["rejected_normalize"]
    stack.check_alive()


def _demo(tmp: Path) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out = subprocess.run([sys.executable, "-m", "streams.cli.main", "demo", "--cdrs", "1500", "--accounts", "60",
                          "--json", "--workdir", str(tmp)], capture_output=True, text=True, timeout=400,
                         cwd=ROOT, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_demo_command_twice_in_a_row(tmp_path):
    for i in range(2):
        s = _demo(tmp_path / f"run{i}")
        assert s["landed_rated"] + s["rejected"] == s["published"]
        assert s["money_matches"] and s["money_total"] == s["money_total_kafka"]
        assert s["duplicates_detected"] >= s["duplicates_resent"]
        assert s["barring_events"] > 0
        assert Path(s["report"]).read_text().count("<svg") >= 2


def test_demo_lands_in_a_real_clickhouse_server(tmp_path, clickhouse_url):
    """The same landing code against Debian's clickhouse-server over the native protocol."""
    from streams.local.demo import DemoOptions, run_demo
    from tests.support.conftest_clickhouse import _fresh_database_url

    url = _fresh_database_url(clickhouse_url)
    s = run_demo(DemoOptions(cdrs=1200, accounts=40, workdir=tmp_path / "run", clickhouse=url))
    assert s["balanced"] and s["money_matches"], s
    assert s["landed_rated"] == 1200 and Path(s["report"]).exists()
