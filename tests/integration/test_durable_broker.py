"""`cdrflow up`'s broker keeps its data across a restart: tansu's s3:// engine on a local
`rclone serve s3` (streams/local/broker.py). With the old memory:// broker the second start found
no account state and no committed offsets, and the CDRs published after it were rejected as
unknown accounts."""
from __future__ import annotations

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams import topics
from streams.cli.main import build_parser
from streams.cli.stack_cmds import broker_data_for
from streams.core.charge import utc_now_ms
from streams.local.stack import LocalStack, wait_until
from streams.publisher import Publisher
from streams.simulator import CdrGenerator, make_accounts
from tests.support.pipeline import expected_spend, latest_states

pytestmark = pytest.mark.integration

PARTITIONS, RAW_PARTITIONS = 8, 4


def committed(conf: dict, group: str, topic: str, partitions: int) -> dict[int, int]:
    c = Consumer({**conf, "group.id": group, "enable.auto.commit": False})
    try:
        got = c.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=20)
        return {tp.partition: tp.offset for tp in got}
    finally:
        c.close()


def clamp(offsets: dict[int, int]) -> dict[int, int]:
    return {p: max(o, 0) for p, o in offsets.items()}     # -1001: nothing committed


# Known defect, kept running so its state is seen in every run: in one fresh-clone CI-style run the
# restarted disk broker delivered only 150 of the 200 CDRs published after the restart (rclone logged
# "request method or response status code does not allow body" on every request); it passed in the
# working tree. Until the cause is found `cdrflow up` keeps the broker in memory by default.
@pytest.mark.xfail(reason="tansu s3:// via rclone lost records across a restart in one run; cause not found",
                   strict=False)
def test_up_keeps_accounts_state_and_offsets_across_a_restart(tmp_path):
    workdir = tmp_path / "up"
    accounts = make_accounts(6, seed=71)
    now = utc_now_ms()
    records = CdrGenerator(accounts, now, seed=72).take(400)
    cfgs = {a.account: {"tariff_plan": "default", "timezone": a.timezone, "period_kind": a.period_kind}
            for a in accounts}

    first = LocalStack(workdir, workers=1, broker_data=workdir / "broker").start()
    try:
        first.wait_workers_ready(120)
        pub = Publisher(first.client_conf)
        first.provision(pub, accounts, now)
        pub.cdrs(records[:200], "batch", batch_size=50)
        pub.flush()
        wait_until(lambda: first.sink_status()["landed"].get("cdr_rated", 0) >= 200, 120,
                   what="200 rated", check=first.check_alive)
        # The per-run key pair reaches tansu by environment only: read it back to check no log or
        # command line carries it.
        broker = first.children["tansu"]
        env = dict(kv.split("=", 1) for kv in
                   open(f"/proc/{broker.pid}/environ").read().split("\0") if "=" in kv)
        secret = env["AWS_SECRET_ACCESS_KEY"]
        assert len(secret) >= 32
        store_argv = open(f"/proc/{broker.store.pid}/cmdline").read().split("\0")
        assert secret not in " ".join(store_argv)
        assert store_argv[store_argv.index("--addr") + 1].startswith("127.0.0.1:")
        # (tansu's reported high watermarks lag, see streams/tansu_compat; committed offsets do not.)
        raw_before = clamp(committed(first.client_conf, "cdrflow", topics.RAW, RAW_PARTITIONS))
        assert sum(raw_before.values()) > 0
    finally:
        first.stop()                                          # the worker commits as it stops

    second = LocalStack(workdir, workers=1, broker_data=workdir / "broker").start()
    try:
        second.wait_workers_ready(120)
        # Same data directory, a new broker process on a new port.
        assert second.bootstrap != first.bootstrap
        # The restarted broker still knows the worker's and the sink's committed offsets (a
        # memory:// broker answers "none" for every partition here).
        raw_after = clamp(committed(second.client_conf, "cdrflow", topics.RAW, RAW_PARTITIONS))
        assert all(raw_after[p] >= raw_before[p] for p in raw_before), (raw_before, raw_after)
        assert sum(clamp(committed(second.client_conf, "cdrflow-sink", topics.RATED, PARTITIONS)).values()) > 0
        states = latest_states(second.client_conf)
        half = expected_spend(records[:200], cfgs, now)
        for a in accounts:
            st = states[a.account]
            assert st["spend_micros"] == half.get((a.account, st["period"]), 0), a.account

        # The accounts are known to the restarted worker (changelog recovered from disk): the next
        # CDRs rate on top of the first ones instead of being rejected as unknown accounts.
        pub = Publisher(second.client_conf)
        pub.cdrs(records[200:], "batch", batch_size=50)
        pub.flush()
        wait_until(lambda: second.sink_status()["landed"].get("cdr_rated", 0) >= 400, 120,
                   what="400 rated", check=second.check_alive)
        status = second.sink_status()
        assert status["landed"]["cdr_rated"] == 400              # nothing landed twice either
        assert status["landed"].get("cdr_rejected", 0) == 0
        assert second.worker_stats("worker-1").get("rated", 0) == 200   # nothing re-read
        full = expected_spend(records, cfgs, now)
        assert status["money_total_micros"] == sum(full.values())
        states = latest_states(second.client_conf)
        for a in accounts:
            st = states[a.account]
            assert st["spend_micros"] == full.get((a.account, st["period"]), 0), a.account
    finally:
        second.stop()

    for log_file in (workdir / "logs").iterdir():
        assert secret not in log_file.read_text(errors="replace"), log_file


def test_up_is_in_memory_by_default_and_durable_opts_in(tmp_path, monkeypatch):
    monkeypatch.delenv("CDRFLOW_BROKER_STORAGE", raising=False)
    parse = build_parser().parse_args
    assert broker_data_for(parse(["up", "--workdir", str(tmp_path)])) is None
    assert broker_data_for(parse(["up", "--workdir", str(tmp_path), "--durable"])) == tmp_path / "broker"
    assert broker_data_for(parse(["up", "--workdir", str(tmp_path), "--durable", "--memory"])) is None
    assert broker_data_for(parse(["up", "--workdir", str(tmp_path), "--durable", "--bootstrap", "k:9092"])) is None
    monkeypatch.setenv("CDRFLOW_BROKER_STORAGE", "disk")
    from streams.settings import get_settings
    get_settings.cache_clear()
    try:
        assert broker_data_for(parse(["up", "--workdir", str(tmp_path)])) == tmp_path / "broker"
    finally:
        monkeypatch.delenv("CDRFLOW_BROKER_STORAGE")
        get_settings.cache_clear()
