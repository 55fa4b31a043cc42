"""The ClickHouse sink loses nothing and duplicates nothing when it, or ClickHouse, dies mid-landing.

(a) chdb: SIGKILL the sink process while rows are landing, restart it; the uncommitted batch is
    re-read and lands once (ReplacingMergeTree keys + dedup tokens).
(b) clickhouse-server 18.16 over the native protocol: SIGKILL the server mid-landing; the sink
    retries with backoff (partitions paused, so memory stays bounded) without crashing, and
    after the server restarts on the same data directory and port every CDR lands once.

Money is checked against an independent sum (tests/support/pipeline.expected_spend) in FINAL,
argMax and the analyst views (v_daily_account, v_period_account).
"""
from __future__ import annotations

import re
import threading
import time
import urllib.request
import uuid

import pytest

from sinks.clickhouse.backend import open_backend
from streams.core.charge import utc_now_ms
from streams.local.stack import LocalStack, wait_until
from streams.publisher import Publisher
from streams.simulator import CdrGenerator, make_accounts
from tests.support.chserver import ClickHouseServer, ServerUnavailable
from tests.support.conftest_clickhouse import _in_ci
from tests.support.pipeline import expected_spend

pytestmark = pytest.mark.integration

N_CDRS, N_ACCOUNTS = 6_000, 60


def _landed(stack) -> int:
    try:
        return stack.sink_status()["landed"].get("cdr_rated", 0)
    except OSError:  # the status endpoint answers 503 while ClickHouse is down
        return -1


def _publish_until_a_fifth_landed(stack):
    """Provision, start trickling CDRs in the background, and return once a fifth has landed:
    the failure each test injects then falls in the middle of the landing."""
    stack.wait_workers_ready(120)
    pub = Publisher(stack.client_conf)
    accounts = make_accounts(N_ACCOUNTS, seed=11, heavy_share=0.2)
    now = utc_now_ms()
    stack.provision(pub, accounts, now)
    records = CdrGenerator(accounts, now, seed=13).take(N_CDRS)

    def trickle():
        # Waves of single records over ~10 s: rows keep landing in many small sink batches
        # while the test pulls the plug, so the kill falls between inserts and commits.
        for i in range(0, N_CDRS, N_CDRS // 30):
            pub.cdrs(records[i:i + N_CDRS // 30], "single")
            pub.flush()
            time.sleep(0.35)

    thread = threading.Thread(target=trickle, name="trickle", daemon=True)
    thread.start()
    cfgs = {a.account: {"tariff_plan": "default", "timezone": a.timezone, "period_kind": a.period_kind}
            for a in accounts}
    wait_until(lambda: _landed(stack) >= N_CDRS // 5, 240, 0.05, what="a fifth to land", check=stack.check_alive)
    return expected_spend(records, cfgs, now), thread


def _metric(stack, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.sink_status_port}/metrics", timeout=10) as r:
        text = r.read().decode()
    m = re.search(rf"^{name}(?:_total)? ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _assert_exact(target: str, expected: dict[tuple[str, str], int]) -> None:
    want_total = sum(expected.values())
    be = open_backend(target)
    try:
        db = be.database
        q = lambda sql: be.query(sql)[0]  # noqa: E731
        final_n, final_keys, final_sum = q(f"SELECT count(), uniqExact(cdr_key), toInt64(sum(cost_micros)) "
                                           f"FROM {db}.cdr_rated FINAL")
        assert (int(final_n), int(final_keys)) == (N_CDRS, N_CDRS)
        assert int(final_sum) == want_total
        am_n, am_sum = q(f"SELECT count(), toInt64(sum(c)) FROM (SELECT cdr_key, argMax(cost_micros, "
                         f"rating_version) AS c FROM {db}.cdr_rated GROUP BY cdr_key)")
        assert (int(am_n), int(am_sum)) == (N_CDRS, want_total)
        daily_calls, daily_sum = q(f"SELECT toInt64(sum(calls)), toInt64(sum(cost_micros)) FROM {db}.v_daily_account")
        assert (int(daily_calls), int(daily_sum)) == (N_CDRS, want_total)
        per = {(a, p): int(v) for a, p, v in be.query(
            f"SELECT account, period, cost_micros FROM {db}.v_period_account")}
        assert {k: v for k, v in per.items() if v} == {k: v for k, v in expected.items() if v}
        calls = q(f"SELECT toInt64(sum(calls)) FROM {db}.v_period_account")[0]
        assert int(calls) == N_CDRS
    finally:
        be.close()


def test_sigkill_sink_mid_batch_chdb(tmp_path):
    stack = LocalStack(tmp_path / "stack", workers=1)
    stack.start()
    try:
        expected, publishing = _publish_until_a_fifth_landed(stack)
        assert publishing.is_alive(), "the kill must happen while CDRs are still arriving"
        stack.children["sink"].kill()                         # SIGKILL mid-landing
        stack.children.pop("sink")
        stack.start_sink()
        publishing.join(120)
        wait_until(lambda: _landed(stack) >= N_CDRS, 300, what="every CDR to land after the restart",
                   check=stack.check_alive)
        time.sleep(2)  # anything still in flight would show up as a surplus
        assert stack.sink_status()["landed"]["cdr_rated"] == N_CDRS
        stack.stop_child("worker-1")
        stack.stop_child("sink")                              # chdb: one process per data path
        _assert_exact(stack.env()["CDRFLOW_CLICKHOUSE"], expected)
    finally:
        stack.stop()


@pytest.fixture
def ch_server(tmp_path):
    try:
        server = ClickHouseServer(tmp_path / "chserver")
    except ServerUnavailable as exc:
        if _in_ci():
            pytest.fail(f"CI=true and {exc}", pytrace=False)
        pytest.skip(str(exc))
    server.start()
    yield server
    server.stop()


def test_clickhouse_server_dies_mid_landing(tmp_path, ch_server):
    from clickhouse_driver import Client

    db = f"t_{uuid.uuid4().hex[:12]}"
    client = Client.from_url(ch_server.url)
    client.execute(f"CREATE DATABASE {db}")
    client.disconnect()
    target = ch_server.url.rsplit("/", 1)[0] + "/" + db
    stack = LocalStack(tmp_path / "stack", workers=1, clickhouse=target)
    stack.start()
    try:
        expected, publishing = _publish_until_a_fifth_landed(stack)
        assert publishing.is_alive(), "the outage must start while CDRs are still arriving"
        sink = stack.children["sink"]
        rss_before = _rss_kb(sink.pid)
        ch_server.stop(kill=True)                             # ClickHouse gone mid-landing
        retries_at_stop = _metric(stack, "cdrflow_sink_retries")
        wait_until(lambda: _metric(stack, "cdrflow_sink_retries") >= retries_at_stop + 3, 60,
                   what="the sink to retry with backoff", check=stack.check_alive)
        time.sleep(3)
        stack.check_alive()                                   # no crash while ClickHouse is away
        assert _landed(stack) == -1                           # /status says 503, not a hang
        # Paused partitions: the sink does not buffer the rest of the topic while it waits.
        assert _rss_kb(sink.pid) < rss_before + 150_000, (rss_before, _rss_kb(sink.pid))
        ch_server.start()                                     # same data directory and port
        publishing.join(120)
        wait_until(lambda: _landed(stack) >= N_CDRS, 300, what="every CDR to land after ClickHouse is back",
                   check=stack.check_alive)
        time.sleep(2)
        status = stack.sink_status()
        assert status["landed"]["cdr_rated"] == N_CDRS
        assert status["retries"] >= 3
        assert stack.children["sink"].pid == sink.pid         # the same process rode out the outage
        stack.stop_child("worker-1")
        stack.stop_child("sink")
        _assert_exact(target, expected)
    finally:
        stack.stop()
