"""SIGKILL the Faust worker mid-run, restart it, and prove the books are exact.

Delivery is at-least-once; the effect must be exactly-once: after the crash every CDR is counted
once in spend and in ClickHouse, and every barring transition exists once.
"""
from __future__ import annotations

import random
import time
from collections import Counter, defaultdict

import pytest

from sinks.clickhouse.backend import open_backend
from streams import topics
from streams.core import credit
from streams.core.charge import utc_now_ms
from streams.local.stack import LocalStack, wait_until
from streams.publisher import Publisher
from streams.simulator import CdrGenerator, make_accounts
from tests.support.pipeline import expected_spend, latest_states, read_topic

pytestmark = pytest.mark.integration


def _landed(stack):
    got = stack.sink_status()["landed"]
    return got.get("cdr_rated", 0), got.get("cdr_rejected", 0)


def _worker_rated(stack):
    return stack.worker_stats("worker-1").get("rated", 0)


def test_sigkill_worker_mid_run_keeps_exact_totals(tmp_path):
    n_cdrs, n_accounts = 12_000, 150
    stack = LocalStack(tmp_path / "stack", workers=1)
    stack.start()
    try:
        stack.wait_workers_ready(120)
        pub = Publisher(stack.client_conf)
        accounts = make_accounts(n_accounts, seed=3, heavy_share=0.2)
        now = utc_now_ms()
        stack.provision(pub, accounts, now)
        records = CdrGenerator(accounts, now, seed=5).take(n_cdrs)
        dups = random.Random(1).sample(records, 300)
        # Small containers and single records, so the kill lands in the middle of many batches.
        pub.cdrs(records[: n_cdrs // 2], "batch", batch_size=100)
        pub.cdrs(records[n_cdrs // 2:], "single")
        pub.cdrs(dups, "single")
        pub.flush()

        # Kill by the worker's own progress, not by what landed: the sink trails the worker.
        wait_until(lambda: _worker_rated(stack) >= n_cdrs // 4, 180, 0.02, what="a quarter to be rated",
                   check=stack.check_alive)
        stack.children["worker-1"].kill()                       # SIGKILL, mid-batch
        stack.children.pop("worker-1")
        stack.start_worker("worker-1")
        stack.wait_workers_ready(120)

        wait_until(lambda: sum(_landed(stack)) >= n_cdrs, 300, what="every CDR to land after the restart",
                   check=stack.check_alive)
        time.sleep(2)
        after = stack.worker_stats("worker-1")
        # The restarted worker really took over: it rated what the dead one had not reached.
        # The restarted worker took over part of the work (the dead one had done the rest), and saw
        # the replayed input its predecessor had already applied.
        assert 0 < after.get("rated", 0) < n_cdrs, after
        assert after.get("duplicates", 0) + after.get("redelivered", 0) > 0, after
        status = stack.sink_status()
        states = latest_states(stack.client_conf)
        barring = [r for _p, _o, _k, _n, r in read_topic(stack.client_conf, topics.BARRING)]
        stack.stop_child("worker-1")
        stack.stop_child("sink")

        cfgs = {a.account: {"tariff_plan": "default", "timezone": a.timezone, "period_kind": a.period_kind}
                for a in accounts}
        expected = expected_spend(records, cfgs, now)
        assert status["landed"]["cdr_rated"] == n_cdrs
        assert status["landed"].get("cdr_rejected", 0) == 0
        assert status["money_total_micros"] == sum(expected.values())

        # Spend state per account equals the independent sum for the account's current period.
        for a in accounts:
            st = states[a.account]
            assert st["spend_micros"] == expected.get((a.account, st["period"]), 0), a.account
            want = credit.computed_profile(st["spend_micros"], credit.AccountConfig(
                a.account, a.timezone, a.period_kind, a.credit_micros, a.soft_limit_pct), False)
            assert st["profile"] == want, a.account

        # Each transition exists once: ids unique in ClickHouse, and no account repeats a transition.
        be = open_backend(stack.env()["CDRFLOW_CLICKHOUSE"])
        try:
            rows = be.query("SELECT account, seq, period, old_profile, new_profile, count() "
                            "FROM barring_events FINAL GROUP BY account, seq, period, old_profile, new_profile")
            per_acct = be.query("SELECT account, toInt64(sum(cost_micros)) FROM cdr_rated FINAL GROUP BY account")
        finally:
            be.close()
        assert all(r[5] == 1 for r in rows)
        transitions = Counter((r[0], r[2], r[3], r[4]) for r in rows)
        assert transitions and max(transitions.values()) == 1, transitions.most_common(3)
        by_event_id = Counter(e["event_id"] for e in barring)
        content = defaultdict(set)
        for e in barring:
            content[e["event_id"]].add((e["old_profile"], e["new_profile"], e["period"]))
        assert all(len(v) == 1 for v in content.values()), "a re-emitted event must carry the same content"
        assert {a for a, _s, *_ in rows} == {e["account"] for e in barring}
        exp_acct: dict[str, int] = defaultdict(int)
        for (acct, _period), v in expected.items():
            exp_acct[acct] += v
        assert {a: int(v) for a, v in per_acct} == {a: v for a, v in exp_acct.items() if v or a in dict(per_acct)}
        assert len(by_event_id) == len(rows)
    finally:
        stack.stop()
