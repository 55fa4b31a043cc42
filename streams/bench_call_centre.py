"""`cdrflow bench --scenario call-centre`: few accounts, many CDRs, cost over time.

Call-centre customers put hundreds of thousands of calls a month on one account (seed 001),
so what must stay flat is the cost of the N-th CDR of an account as its history grows. The
run publishes the CDRs (spread over ``days`` of call dates) in ``segments`` equal parts, one
after the other, and for each part waits until the sink's in-memory counters show it landed,
then records:

* worker CPU per CDR (utime+stime of the worker processes from /proc/<pid>/stat),
* wall time and CDRs/s of the part,
* worker RSS.

At the end one ``count() FINAL`` verifies every CDR landed, and the account-table and key-table
changelogs are read from the beginning to report their largest record (what one table write
costs the broker; issue 16's bound is 1 MiB) and the bytes written per CDR.
"""
from __future__ import annotations

import time
from pathlib import Path

from streams import topics
from streams.bench import (
    BenchOptions,
    Step,
    _final_total,
    _landed_total,
    cpu_of,
    machine_info,
    peak_rss_mb,
    proc_status_mb,
    publish_timed,
    sink_counters,
    verify_final,
)
from streams.core.charge import utc_now_ms
from streams.local.stack import LocalStack
from streams.publisher import Publisher
from streams.simulator import CdrGenerator, make_accounts

APP_ID = "cdrflow"  # streams/app.py


def rss_mb(pid: int) -> float | None:
    return proc_status_mb(pid, "VmRSS")


def changelog_sizes(client_conf: dict, timeout_s: float = 120) -> dict:
    """Largest record and total bytes of each table changelog, read from the beginning."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    out: dict = {}
    for name in topics.changelog_topics(APP_ID):
        c = Consumer({**client_conf, "group.id": f"cdrflow-bench-cl-{time.time_ns()}",
                      "enable.auto.commit": False, "enable.partition.eof": True,
                      "fetch.max.bytes": 64 << 20, "max.partition.fetch.bytes": 32 << 20})
        try:
            meta = c.list_topics(name, timeout=10).topics.get(name)
            if meta is None or not meta.partitions:
                out[name] = None
                continue
            parts = list(meta.partitions)
            c.assign([TopicPartition(name, p, OFFSET_BEGINNING) for p in parts])
            pending = set(parts)
            largest = total = records = 0
            deadline = time.monotonic() + timeout_s
            idle_polls = 0
            while pending and time.monotonic() < deadline:
                batch = c.consume(1000, 0.5)
                if not batch:
                    # tansu does not always send partition EOF: stop after a quiet spell.
                    idle_polls += 1
                    if idle_polls >= 6:
                        break
                    continue
                idle_polls = 0
                for m in batch:
                    err = m.error()
                    if err is not None:
                        pending.discard(m.partition())
                        continue
                    size = len(m.value() or b"") + len(m.key() or b"")
                    records += 1
                    total += size
                    largest = max(largest, size)
            out[name] = {"records": records, "bytes": total, "largest_record_bytes": largest}
        finally:
            c.close()
    return out


def flatness(segments: list[dict]) -> float | None:
    """Last part's worker CPU per CDR over the first's (1.0 = flat; the target is within 20 %)."""
    first, last = segments[0]["worker_cpu_us_per_cdr"], segments[-1]["worker_cpu_us_per_cdr"]
    if not first or last is None:
        return None
    return round(last / first, 2)


def run_call_centre(opts: BenchOptions, progress: Step | None = None, *, segments: int = 10,
                    days: int = 30) -> dict:
    step = progress or (lambda *a, **k: None)
    t_start = time.monotonic()
    import shutil
    import tempfile

    own_workdir = opts.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="cdrflow-bench-cc-")) if own_workdir else opts.workdir
    stack = LocalStack(workdir, workers=opts.workers)
    result: dict = {"scenario": "call-centre", "cdrs": opts.cdrs, "accounts": opts.accounts, "mode": opts.mode,
                    "workers": opts.workers, "days": days, "machine": machine_info()}
    ok = False
    try:
        step("starting tansu, workers and the ClickHouse sink", phase="setup")
        stack.start()
        stack.wait_workers_ready(120)
        pub = Publisher(stack.client_conf)
        now = utc_now_ms()
        # Postpaid-sized credit: a call centre is not barred mid-benchmark (heavy_share 0).
        accounts = make_accounts(opts.accounts, seed=opts.seed, heavy_share=0.0)
        step(f"provisioning {len(accounts)} accounts", phase="setup")
        stack.provision(pub, accounts, now, max(300.0, opts.timeout_s))
        step(f"generating {opts.cdrs} CDRs over {days} days", phase="setup")
        records = CdrGenerator(accounts, now, seed=opts.seed + 1, window_s=days * 86_400).take(opts.cdrs)
        base = _landed_total(sink_counters(stack))
        base_final = _final_total(stack.sink_status())
        pids = {name: ch.pid for name, ch in stack.children.items()}
        workers = [n for n in pids if n not in ("sink", "tansu")]
        size = max(1, -(-len(records) // segments))
        parts = [records[i:i + size] for i in range(0, len(records), size)]
        out_segments: list[dict] = []
        done_cdrs = 0
        step(f"call-centre: {len(parts)} parts of {size} CDRs", phase="publish", total=len(records))
        for k, part in enumerate(parts):
            cpu0 = cpu_of(pids)
            t0 = time.monotonic()
            publish_timed(pub, part, opts.mode, opts.batch_size,
                          on_chunk=lambda n: step(None, phase="publish", advance=n))
            pub.flush()
            done_cdrs += len(part)
            deadline = time.monotonic() + opts.timeout_s
            while _landed_total(sink_counters(stack)) - base < done_cdrs:
                stack.check_alive()
                if time.monotonic() > deadline:
                    raise TimeoutError(f"part {k + 1}: timed out after {opts.timeout_s}s waiting for it to land")
                time.sleep(opts.poll_ms / 1000)
            wall = time.monotonic() - t0
            cpu1 = cpu_of(pids)
            spent = [cpu1[w] - cpu0[w] for w in workers if cpu0.get(w) is not None and cpu1.get(w) is not None]
            out_segments.append({
                "part": k + 1,
                "cdrs_before": done_cdrs - len(part),
                "cdrs": len(part),
                "seconds": round(wall, 2),
                "cdrs_per_s": round(len(part) / wall, 1) if wall else None,
                "worker_cpu_us_per_cdr": round(sum(spent) / len(part) * 1e6, 1) if spent else None,
                "worker_rss_mb": {w: rss_mb(pids[w]) for w in workers},
            })
        final = verify_final(stack, base_final, len(records), opts.timeout_s, check=stack.check_alive)
        result["segments"] = out_segments
        result["flatness_last_over_first"] = flatness(out_segments)
        result["landed_distinct"] = _final_total(final["status"]) - base_final
        result["peak_rss_mb"] = {name: peak_rss_mb(pid) for name, pid in pids.items()}
        step("reading the table changelogs", phase="setup")
        sizes = changelog_sizes(stack.client_conf)
        result["changelogs"] = sizes
        largest = max((v["largest_record_bytes"] for v in sizes.values() if v), default=None)
        total = sum(v["bytes"] for v in sizes.values() if v)
        result["largest_changelog_record_bytes"] = largest
        result["changelog_bytes_per_cdr"] = round(total / len(records), 1) if records else None
        result["targets"] = {"flatness_last_over_first": "<= 1.2", "largest_changelog_record_bytes": 1 << 20,
                             "worker_rss_mb": 1024}
        pub = None
        stack.stop()
        result["seconds_total"] = round(time.monotonic() - t_start, 1)
        result["workdir"] = None if own_workdir else str(workdir)
        ok = True
        return result
    finally:
        stack.stop()
        if own_workdir:
            if ok:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                step(f"the run failed; logs and data are kept in {workdir}", phase="setup")
