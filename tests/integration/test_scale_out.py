"""Four workers join and leave during a flood: account partitions move at every step, and the books
stay exact (every CDR rated once, spend per account equal to an independent sum) and no barring
transition is lost or doubled (each account's transitions form one unbroken chain ending at the
current profile of its period). The two-worker test (test_two_workers.py) does one join and one leave; this is
the scale-out version, on one machine.

Bounded: 9,000 CDRs, six membership steps, every wait has its own limit and the whole test a
deadline. Faust's session/rebalance timeouts stay as streams/app.py sets them."""
from __future__ import annotations

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

N_CDRS, N_ACCOUNTS, CHUNK = 9_000, 80, 1_500
DEADLINE_S = 300            # measured ~70 s on 2 cores


def test_four_workers_join_and_leave_during_a_flood(tmp_path):
    started = time.monotonic()

    def left(cap: float) -> float:
        remaining = DEADLINE_S - (time.monotonic() - started)
        assert remaining > 0, f"scale-out test ran past its {DEADLINE_S}s deadline"
        return min(cap, remaining)

    stack = LocalStack(tmp_path / "stack", workers=1)
    stack.start()
    try:
        stack.wait_workers_ready(120)
        pub = Publisher(stack.client_conf)
        accounts = make_accounts(N_ACCOUNTS, seed=91, heavy_share=0.35)
        now = utc_now_ms()
        stack.provision(pub, accounts, now)
        records = CdrGenerator(accounts, now, seed=92).take(N_CDRS)
        chunks = [records[i:i + CHUNK] for i in range(0, N_CDRS, CHUNK)]

        def landed() -> int:
            return stack.sink_status()["landed"].get("cdr_rated", 0)

        # Each step: publish a chunk, let the pipeline get into it, then change the membership while
        # the rest of that chunk (and what came before) is still in flight.
        steps = [("join", "worker-2"), ("join", "worker-3"), ("join", "worker-4"),
                 ("leave", "worker-1"), ("leave", "worker-2"), (None, None)]
        assignments = [stack.wait_balanced(left(120))]
        published = 0
        for chunk, (action, name) in zip(chunks, steps):
            pub.cdrs(chunk, "batch", batch_size=100)
            pub.flush()
            target = published + len(chunk) // 3
            published += len(chunk)
            wait_until(lambda: landed() >= target, left(120), what=f"{target} rated", check=stack.check_alive)
            if action == "join":
                stack.start_worker(name)
                stack.wait_workers_ready(left(120))
            elif action == "leave":
                stack.stop_child(name)
            else:
                continue
            split = stack.wait_balanced(left(120))
            assert split != assignments[-1], f"partitions did not move when {name} {action}s: {split}"
            assignments.append(split)
        assert [sorted(a) for a in assignments] == [
            ["worker-1"], ["worker-1", "worker-2"], ["worker-1", "worker-2", "worker-3"],
            ["worker-1", "worker-2", "worker-3", "worker-4"], ["worker-2", "worker-3", "worker-4"],
            ["worker-3", "worker-4"]]
        assert all(len(p) == 2 for p in assignments[3].values()), assignments[3]

        wait_until(lambda: landed() >= N_CDRS, left(180), what="every CDR rated", check=stack.check_alive)
        time.sleep(2)                              # anything landing twice would land by now
        status = stack.sink_status()
        states = latest_states(stack.client_conf)
        barring = [r for _p, _o, _k, _n, r in read_topic(stack.client_conf, topics.BARRING)]
        stack.stop_child("worker-3")
        stack.stop_child("worker-4")
        stack.stop_child("sink")

        cfgs = {a.account: {"tariff_plan": "default", "timezone": a.timezone, "period_kind": a.period_kind}
                for a in accounts}
        expected = expected_spend(records, cfgs, now)
        assert status["landed"]["cdr_rated"] == N_CDRS
        assert status["landed"].get("cdr_rejected", 0) == 0
        assert status["money_total_micros"] == sum(expected.values())
        for a in accounts:
            st = states[a.account]
            assert st["spend_micros"] == expected.get((a.account, st["period"]), 0), a.account

        # No transition lost, none doubled: per account, in seq order, each event starts where the
        # previous one ended and the last ends at the account's current profile.
        be = open_backend(stack.env()["CDRFLOW_CLICKHOUSE"])
        try:
            rows = be.query("SELECT account, seq, period, old_profile, new_profile, count() "
                            "FROM barring_events FINAL GROUP BY account, seq, period, old_profile, new_profile")
        finally:
            be.close()
        assert rows, "the heavy accounts should have crossed their limits"
        assert all(r[5] == 1 for r in rows)
        assert len({e["event_id"] for e in barring}) == len(rows)
        chains: dict[str, list] = defaultdict(list)
        for account, seq, period, old, new, _n in rows:
            chains[account].append((seq, period, old, new))
        for account, chain in chains.items():
            chain.sort()
            assert Counter(s for s, *_ in chain).most_common(1)[0][1] == 1, (account, chain)
            for (_s1, p1, _o1, new1), (_s2, p2, old2, _n2) in zip(chain, chain[1:]):
                assert p1 != p2 or new1 == old2, f"{account}: a transition is missing between {chain}"
        by_account = {a.account: a for a in accounts}
        for account, st in states.items():
            a = by_account[account]
            cfg = credit.AccountConfig(account, a.timezone, a.period_kind, a.credit_micros, a.soft_limit_pct)
            assert st["profile"] == credit.computed_profile(st["spend_micros"], cfg, False), account
            # A new period starts from the zero-spend profile without an event; within the current
            # period the last transition ends at the current profile.
            in_period = [c for c in chains.get(account, []) if c[1] == st["period"]]
            assert (in_period[-1][3] if in_period else credit.computed_profile(0, cfg, False)) == st["profile"], \
                (account, chains.get(account), st)
    finally:
        stack.stop()
