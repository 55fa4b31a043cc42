"""Two workers with partitions moving between them: the state follows the partitions (changelog
recovery) and the books stay exact."""
from __future__ import annotations

import time

import pytest

from streams.core.charge import utc_now_ms
from streams.local.stack import LocalStack, wait_until
from streams.publisher import Publisher
from streams.simulator import CdrGenerator, make_accounts
from tests.support.pipeline import expected_spend, latest_states

pytestmark = pytest.mark.integration


def test_partitions_move_between_two_workers_and_state_stays_right(tmp_path):
    stack = LocalStack(tmp_path / "stack", workers=1)
    stack.start()
    try:
        stack.wait_workers_ready(120)
        pub = Publisher(stack.client_conf)
        accounts = make_accounts(60, seed=41, heavy_share=0.3)
        now = utc_now_ms()
        stack.provision(pub, accounts, now)
        records = CdrGenerator(accounts, now, seed=42).take(4500)

        def publish_and_wait(chunk, total):
            pub.cdrs(chunk, "batch", batch_size=100)
            pub.flush()
            wait_until(lambda: stack.sink_status()["landed"].get("cdr_rated", 0) >= total, 240,
                       what=f"{total} rated", check=stack.check_alive)

        publish_and_wait(records[:1500], 1500)
        stack.start_worker("worker-2")                 # rebalance: half the partitions move over
        stack.wait_workers_ready(120)
        split = stack.wait_balanced(120)
        assert split["worker-1"] and split["worker-2"]
        publish_and_wait(records[1500:3000], 3000)
        stats2 = stack.worker_stats("worker-2")
        assert stats2.get("rated", 0) > 0, "worker-2 should have taken partitions over"
        stack.stop_child("worker-1")                   # everything moves to worker-2
        assert stack.wait_balanced(120) == {"worker-2": list(range(stack.partitions))}
        publish_and_wait(records[3000:], 4500)
        time.sleep(2)

        status = stack.sink_status()
        states = latest_states(stack.client_conf)
        cfgs = {a.account: {"tariff_plan": "default", "timezone": a.timezone, "period_kind": a.period_kind}
                for a in accounts}
        expected = expected_spend(records, cfgs, now)
        assert status["landed"]["cdr_rated"] == 4500
        assert status["money_total_micros"] == sum(expected.values())
        for a in accounts:
            st = states[a.account]
            assert st["spend_micros"] == expected.get((a.account, st["period"]), 0), a.account
    finally:
        stack.stop()
