"""The main job on the embedded stack: simulate switches, run the pipeline, land, report, stop.

Completion is judged by counting distinct rows landed in ClickHouse, never by consumer lag
(tansu's high watermark is wrong). The money check is independent of the sink: the rated
records are read back from Kafka, de-duplicated by CDR key and summed in Python.
"""
from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from streams import codecs, topics
from streams.core.charge import utc_now_ms
from streams.core.money import format_micros
from streams.local.badinput import corpus
from streams.local.stack import LocalStack, wait_until
from streams.publisher import Publisher
from streams.simulator import CdrGenerator, make_accounts

log = logging.getLogger("cdrflow.demo")


@dataclass
class DemoOptions:
    cdrs: int = 5000
    accounts: int = 300
    mode: str = "mixed"           # single | batch | mixed
    workers: int = 1
    seed: int = 7
    duplicate_share: float = 0.01
    bad_inputs: bool = True
    batch_size: int = 500
    timeout_s: float = 600
    workdir: Path | None = None
    report: bool = True
    bootstrap: str | None = None       # external Kafka instead of tansu
    clickhouse: str | None = None      # clickhouse:// URL instead of chdb
    portal_port: int = 0               # >0: the sink serves the self-care portal there, with a demo login
    hold: Callable[[dict], None] | None = None   # called with the summary before the stack stops (--stay)


def kafka_rated_total(client_conf: dict, expect_keys: int, timeout_s: float = 60) -> tuple[int, int]:
    """Independent sum: read cdr.rated back from Kafka, keep one record per CDR key."""
    c = Consumer({**client_conf, "group.id": f"cdrflow-demo-check-{time.time_ns()}",
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    # assign(), not subscribe(): a group join on tansu costs about half the session timeout.
    parts = c.list_topics(topics.RATED, timeout=10).topics[topics.RATED].partitions
    c.assign([TopicPartition(topics.RATED, p, OFFSET_BEGINNING) for p in parts])
    costs: dict[str, int] = {}
    deadline = time.monotonic() + timeout_s
    idle_since = time.monotonic()
    try:
        while time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None or m.error():
                if len(costs) >= expect_keys and time.monotonic() - idle_since > 1.0:
                    break
                continue
            idle_since = time.monotonic()
            name, rec = codecs.decode(m.value(), max_items=1 << 30)
            for r in rec["records"] if name == codecs.RATED_BATCH else [rec]:
                costs[r["cdr_key"]] = r["cost_micros"]
    finally:
        c.close()
    return len(costs), sum(costs.values())


def run_demo(opts: DemoOptions, progress=None) -> dict:
    t0 = time.monotonic()
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    workdir = opts.workdir or Path("var") / "runs" / stamp
    users_file = workdir / "portal" / "users.json"    # the demo's own store: the operator's is left alone
    stack = LocalStack(workdir, workers=opts.workers, bootstrap=opts.bootstrap, clickhouse=opts.clickhouse,
                       portal_port=opts.portal_port, extra_env={"CDRFLOW_PORTAL_USERS_FILE": str(users_file)})
    step = progress or (lambda *a, **k: None)
    summary: dict = {}
    try:
        step("starting broker, workers and sink")
        stack.start()
        stack.wait_workers_ready(120)
        stack.wait_balanced(180)
        pub = Publisher(stack.client_conf)
        accounts = make_accounts(opts.accounts, seed=opts.seed)
        now = utc_now_ms()
        step(f"provisioning {len(accounts)} accounts")
        stack.provision(pub, accounts, now)
        if opts.portal_port:
            from streams.portal.embedded import DEMO_USER, demo_login

            granted = [a.account for a in accounts[:2]]
            password = demo_login(users_file, granted)
            summary["portal"] = f"http://127.0.0.1:{opts.portal_port}/"
            # Printed once, never in the summary (which --json prints and logs may keep).
            step(f"portal: {summary['portal']} (accounts {', '.join(granted)})")
            step(f"portal login: {DEMO_USER} / {password}")

        gen = CdrGenerator(accounts, now, seed=opts.seed + 1)
        records = gen.take(opts.cdrs)
        bad = corpus(records[0], now) if opts.bad_inputs else []
        rnd = random.Random(opts.seed)
        dups = rnd.sample(records, int(len(records) * opts.duplicate_share))
        step(f"publishing {len(records)} CDRs ({opts.mode}), {len(dups)} re-sent duplicates, {len(bad)} bad inputs")
        t_pub = time.monotonic()
        if opts.mode == "mixed":
            half = len(records) // 2
            messages = pub.cdrs(records[:half], "single") + pub.cdrs(records[half:], "batch", opts.batch_size)
        else:
            messages = pub.cdrs(records, opts.mode, opts.batch_size)
        pub.cdrs(dups, "single")          # a switch re-sending CDRs it already sent
        pub.raw(b for _, b in bad)
        pub.flush()
        pub.close()
        published = len(records) + len(bad)

        def landed() -> int:
            got = stack.sink_status()["landed"]
            step(None, done=got.get("cdr_rated", 0) + got.get("cdr_rejected", 0), total=published)
            return got.get("cdr_rated", 0) + got.get("cdr_rejected", 0)

        wait_until(lambda: landed() >= published, opts.timeout_s, what="every CDR to land as rated or rejected",
                   check=stack.check_alive)
        pipeline_s = time.monotonic() - t_pub
        time.sleep(1.5)           # barring and state records of the last batch land in the next flush
        status = stack.sink_status()
        worker_counts: dict = {}
        for name in list(stack.worker_ports):
            for k, v in stack.worker_stats(name).items():
                worker_counts[k] = worker_counts.get(k, 0) + v
        step("independent check: summing rated records read back from Kafka")
        kafka_keys, kafka_total = kafka_rated_total(stack.client_conf, status["landed"].get("cdr_rated", 0))
        landed_counts = status["landed"]
        summary = {**summary,
            "published": published,
            "published_messages": messages + len(dups) + len(bad),
            "duplicates_resent": len(dups),
            "rated": kafka_keys,
            "rejected": landed_counts.get("cdr_rejected", 0),
            "landed_rated": landed_counts.get("cdr_rated", 0),
            "barring_events": landed_counts.get("barring_events", 0),
            "duplicates_detected": worker_counts.get("duplicates", 0),
            "money_total": format_micros(status["money_total_micros"]),
            "money_total_kafka": format_micros(kafka_total),
            "money_matches": status["money_total_micros"] == kafka_total,
            "balanced": landed_counts.get("cdr_rated", 0) + landed_counts.get("cdr_rejected", 0) == published,
            "cdrs_per_s": round(len(records) / pipeline_s, 1) if pipeline_s else None,
            "workers": opts.workers,
            "mode": opts.mode,
            "workdir": str(workdir),
        }
        if opts.hold is not None:
            opts.hold(summary)      # the stack (and the portal) stay up until it returns
        stack.stop()
        if opts.report:
            step("writing the HTML report")
            summary["report"] = str(write_report(stack, workdir, summary))
        summary["seconds"] = round(time.monotonic() - t0, 1)
        return summary
    finally:
        stack.stop()


def write_report(stack: LocalStack, workdir: Path, summary: dict) -> Path:
    from sinks.clickhouse.backend import open_backend
    from sinks.reports.html import write_run_report

    backend = open_backend(stack.env()["CDRFLOW_CLICKHOUSE"])
    try:
        return write_run_report(backend, workdir / "report.html", "cdrflow demo run", summary)
    finally:
        backend.close()


def dumps(summary: dict) -> str:
    return json.dumps(summary, sort_keys=False)
