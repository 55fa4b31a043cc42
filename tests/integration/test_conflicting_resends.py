"""Switches re-send CDRs with the same key but changed content while the worker is SIGKILLed:
the bill (ClickHouse) and the books (account spend) must both show the first applied copy.

Issue 15 finding 1: the redelivery after a crash rebuilt the rated row from whichever copy
arrived, and ``cdr_rated`` (ReplacingMergeTree) kept the later, never-billed copy. Bounded:
4,000 CDRs + 1,000 conflicting copies over 60 accounts, two kills, each wait with a timeout.
"""
from __future__ import annotations

import random
import time
from collections import defaultdict

import pytest

from sinks.clickhouse.backend import open_backend
from streams.core.charge import utc_now_ms
from streams.local.stack import LocalStack, wait_until
from streams.publisher import Publisher
from streams.simulator import CdrGenerator, make_accounts
from tests.support.pipeline import expected_spend, latest_states

pytestmark = pytest.mark.integration


def _rated_landed(stack) -> int:
    return stack.sink_status()["landed"].get("cdr_rated", 0)


def _worker_rated(stack) -> int:
    return stack.worker_stats("worker-1").get("rated", 0)


def _kill_and_restart(stack) -> None:
    stack.children["worker-1"].kill()                       # SIGKILL, mid-batch
    stack.children.pop("worker-1")
    stack.start_worker("worker-1")
    stack.wait_workers_ready(120)


def test_conflicting_re_sends_during_sigkills_bill_and_land_the_first_copy(tmp_path):
    n_cdrs, n_conflicts, n_accounts = 4_000, 1_000, 60
    stack = LocalStack(tmp_path / "stack", workers=1)
    stack.start()
    try:
        stack.wait_workers_ready(120)
        pub = Publisher(stack.client_conf)
        accounts = make_accounts(n_accounts, seed=13, heavy_share=0.2)
        now = utc_now_ms()
        stack.provision(pub, accounts, now)
        records = CdrGenerator(accounts, now, seed=17).take(n_cdrs)
        rnd = random.Random(3)
        answered = [r for r in records if r["billsec_s"] > 0]
        # Same key (switch, call id, leg, partial), longer call: a different cost if it were billed.
        conflicts = {id(r): dict(r, billsec_s=r["billsec_s"] + 47, duration_s=r["duration_s"] + 47,
                                 end_ms=r["end_ms"] + 47_000)
                     for r in rnd.sample(answered, n_conflicts)}
        # Each copy follows its original a little later in the same stream. Single records are
        # keyed by account, so an account's records keep their order end to end and the original
        # is the copy applied first.
        stream: list[dict] = []
        pending: list[tuple[int, dict]] = []
        for i, r in enumerate(records):
            stream.append(r)
            if id(r) in conflicts:
                pending.append((i + rnd.randint(1, 300), conflicts[id(r)]))
            stream += [c for due, c in pending if due <= i]
            pending = [(due, c) for due, c in pending if due > i]
        stream += [c for _due, c in pending]
        # One last fresh CDR per account: once it is rated, everything before it for the account was
        # processed, conflicting copies included.
        gen = CdrGenerator(accounts, now, seed=19, switch_id="sw-last")
        last: dict[str, dict] = {}
        for _ in range(50_000):
            last.setdefault((r := gen.next())["account"], r)
            if len(last) == n_accounts:
                break
        sentinels = list(last.values())
        stream += sentinels
        total = n_cdrs + len(sentinels)
        # Kill while the worker is inside a chunk: what it applied but had not committed comes
        # again, conflicting copies included.
        chunk = len(stream) // 3
        for k in range(3):
            part = stream[k * chunk:] if k == 2 else stream[k * chunk:(k + 1) * chunk]
            pub.cdrs(part, "single")
            pub.flush()
            if k < 2:
                wait_until(lambda: _worker_rated(stack) >= 300, 240, 0.01, what="the worker inside a chunk",
                           check=stack.check_alive)
                _kill_and_restart(stack)
        wait_until(lambda: _rated_landed(stack) >= total, 300, what="every CDR to land after the kills",
                   check=stack.check_alive)
        time.sleep(3)      # the last redelivered rows (if any) land too
        pub.close()
        states = latest_states(stack.client_conf)
        stack.stop_child("worker-1")
        stack.stop_child("sink")

        cfgs = {a.account: {"tariff_plan": "default", "timezone": a.timezone, "period_kind": a.period_kind}
                for a in accounts}
        # Independent sums: each key billed once, at its first copy in the stream.
        expected = expected_spend(stream, cfgs, now)
        be = open_backend(stack.env()["CDRFLOW_CLICKHOUSE"])
        try:
            rows = be.query("SELECT account, period, toInt64(sum(cost_micros)), count() "
                            "FROM cdr_rated FINAL GROUP BY account, period")
            billsecs = dict(be.query("SELECT cdr_key, billsec_s FROM cdr_rated FINAL"))
        finally:
            be.close()
        landed = {(a, p): int(v) for a, p, v, _n in rows}
        assert sum(n for *_x, n in rows) == total
        diff = {k: (landed.get(k, 0), v) for k, v in expected.items() if landed.get(k, 0) != v}
        assert diff == {}, f"ClickHouse differs from the billed copies for {len(diff)} (account, period)"
        assert set(landed) <= set(expected)
        # The books agree with the bill for every account's current period.
        for a in accounts:
            st = states[a.account]
            assert st["spend_micros"] == landed.get((a.account, st["period"]), 0), a.account
        # And the row of every re-sent key is the original's.
        from streams.core.normalize import normalize
        from streams.core.sources import NumberingContext

        originals = {normalize(r, NumberingContext(), now_ms=now)["cdr_key"]: r["billsec_s"]
                     for r in records if id(r) in conflicts}
        wrong = {k for k, b in originals.items() if billsecs.get(k) != b}
        assert not wrong, f"{len(wrong)} re-sent keys landed with the changed copy"
    finally:
        stack.stop()
