"""Benchmark of the whole pipeline on the embedded local stack.

Phases, all in one run (see ``run_bench``):

1. **Flood** (end-to-end throughput). Accounts are provisioned and CDRs generated before the
   clock starts. The clock runs from the first publish to the first poll of the sink's in-memory
   counters (``/counters``: rows landed per table, no query) that shows every CDR landed as
   rated or rejected. Then ONE ``count() FINAL`` (``/status``) verifies the distinct rows; only
   if replays left it short is FINAL re-read once a second, and the clock then ends at the
   verifying reply. tansu's high watermark is wrong, so completion is never judged by lag.
   Worker and sink CPU (utime+stime from /proc/<pid>/stat) over the flood are reported per CDR
   and per landed row, next to the raw consume+decode cost of phase 2.
2. **Raw limit** (the ceiling). A confluent-kafka consumer assigned to every partition of
   ``cdr.raw`` from the beginning reads the same input back and decodes it fully with fastavro
   (containers record by record, single records with the Confluent framing).
3. **Latency** (optional, on by default). Paced publishing at ``--rate`` (default: half the
   measured end-to-end rate) for accounts with small credit, so they cross their soft and hard
   limits. A confluent consumer (assign, in a thread) reads ``account.barring``; the latency of
   a barring event is its Kafka timestamp minus ``cause_ingest_ms`` (the Kafka timestamp of the
   raw message that carried the causing CDR). The receive time is reported next to it.
4. **Stage profile** (optional, after the stack is stopped so it competes with nothing): the
   same raw messages through ``Normalizer.run`` and ``charge_partition`` in this process, with
   the output encodings and the Faust table's JSON serialisation, to show where time goes.

Landing lag: the sink does not record a landing time per row, and chdb is owned by the sink
process, so the bench polls the sink's ``/counters`` every ``poll_ms`` and attributes newly landed
rows to the poll's reply time in publish order (FIFO): the k-th CDR published is taken to have
landed at the first poll that shows at least k rows. The error is one poll interval plus the
status query time (both reported), and the FIFO order is approximate across partitions.
Polling ``/status`` instead (``count() FINAL`` per poll, ~65 ms of sink CPU each) made the sink
spend most of its CPU answering the benchmark (issue 16).
"""
from __future__ import annotations

import bisect
import json
import os
import platform
import shutil
import tempfile
import threading
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from streams import codecs, topics
from streams.core.charge import utc_now_ms
from streams.local.stack import LocalStack
from streams.publisher import Publisher
from streams.simulator import CdrGenerator, SimAccount, make_accounts

LANDING_LAG_METHOD = (
    "sink /counters polled every poll_ms (rows of cdr_rated + cdr_rejected the landing loop inserted, "
    "kept in memory; verified once with count() FINAL at the end of each phase); the k-th CDR "
    "published is attributed to the first poll whose reply shows >= k landed rows (FIFO), lag = "
    "that reply's wall time - the CDR's publish (Kafka CreateTime) time; error <= one poll "
    "interval + status query time; order across partitions is approximate")

Step = Callable[..., None]


@dataclass
class BenchOptions:
    cdrs: int = 50_000
    accounts: int = 5_000
    mode: str = "batch"                 # single | batch
    workers: int = 1
    batch_size: int = 500
    seed: int = 7
    latency: bool = True                # the paced phase that measures barring latency
    rate: float | None = None           # CDRs/s of the paced phase; default: half of end-to-end
    latency_seconds: float = 15.0
    latency_accounts: int = 200
    poll_ms: int = 100
    poll_final: bool = False            # poll count() FINAL (/status) as before issue 16, to measure its cost
    stage_profile: bool = True
    profile_cdrs: int = 100_000         # at most this many CDRs go through the stage profile
    timeout_s: float = 900
    workdir: Path | None = None         # default: a temporary directory, removed on success


# ------------------------------------------------------------------------------ small helpers

def percentiles(values: list[float], ps=(50, 99)) -> dict:
    """Nearest-rank percentiles, rounded to 0.1; None when there are no values."""
    if not values:
        return {f"p{p}": None for p in ps} | {"n": 0}
    s = sorted(values)
    out = {f"p{p}": round(s[min(len(s) - 1, max(0, -(-p * len(s) // 100) - 1))], 1) for p in ps}
    out["max"] = round(s[-1], 1)
    out["n"] = len(s)
    return out


def machine_info() -> dict:
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "memory_gib": round(mem_kb / 1024 / 1024, 1),
            "python": platform.python_version(), "platform": platform.platform(terse=True)}


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM (peak resident set) of a live process, in MiB."""
    return proc_status_mb(pid, "VmHWM")


def proc_status_mb(pid: int, field: str) -> float | None:
    """A kB field of /proc/<pid>/status (VmRSS, VmHWM) in MiB; None once the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, in seconds (for the share of the 2 cores each one used)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return round((int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), 2)
    except (OSError, IndexError, ValueError):
        return None


def cpu_of(pids: dict[str, int]) -> dict[str, float | None]:
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def cpu_per_cdr(before: dict, after: dict, cdrs: int, rows: int, raw_cdrs_per_s: float | None) -> dict:
    """Worker CPU per CDR and sink CPU per landed row over a phase, in µs, and their ratios to
    the raw consume+decode cost per CDR (1e6 / raw rate: one core decoding the same input).
    ``before``/``after``: process name -> CPU seconds; names other than "sink"/"tansu" are workers."""
    def spent(names):
        got = [after[n] - before[n] for n in names if before.get(n) is not None and after.get(n) is not None]
        return sum(got) if got else None

    workers = [n for n in after if n not in ("sink", "tansu")]
    w, k = spent(workers), spent(["sink"])
    out: dict = {
        "worker_cpu_us_per_cdr": round(w / cdrs * 1e6, 1) if w is not None and cdrs else None,
        "sink_cpu_us_per_row": round(k / rows * 1e6, 1) if k is not None and rows else None,
        "broker_cpu_us_per_cdr": (round(spent(["tansu"]) / cdrs * 1e6, 1)
                                  if "tansu" in after and spent(["tansu"]) is not None and cdrs else None),
        "raw_decode_us_per_cdr": round(1e6 / raw_cdrs_per_s, 2) if raw_cdrs_per_s else None,
        "targets": {"worker_cpu_us_per_cdr": 80, "sink_cpu_us_per_row": 20},
        "method": "utime+stime of each process from /proc/<pid>/stat (10 ms ticks) over the phase",
    }
    raw = out["raw_decode_us_per_cdr"]
    for key, name in (("worker_cpu_us_per_cdr", "worker_cpu_x_raw"), ("sink_cpu_us_per_row", "sink_cpu_x_raw")):
        out[name] = round(out[key] / raw, 1) if out[key] is not None and raw else None
    return out


def landing_lags(publish_marks: list[tuple[int, float]], samples: list[tuple[float, int]],
                 base_landed: int = 0) -> list[float]:
    """FIFO attribution of landing times (see LANDING_LAG_METHOD).

    ``publish_marks``: (cumulative CDRs published after this chunk, wall ms the chunk was sent),
    ``samples``: (wall ms of a status reply, landed rows), landed rows non-decreasing.
    Returns one lag (ms) per CDR that has landed.
    """
    counts = [n - base_landed for _, n in samples]
    # Make the landed counts monotone (a poll never un-lands rows, but be safe).
    for i in range(1, len(counts)):
        counts[i] = max(counts[i], counts[i - 1])
    lags: list[float] = []
    prev = 0
    for cum, t_pub in publish_marks:
        for k in range(prev + 1, cum + 1):
            i = bisect.bisect_left(counts, k)
            if i >= len(counts):
                return lags
            lags.append(samples[i][0] - t_pub)
        prev = cum
    return lags


def sink_counters(stack: LocalStack) -> dict:
    """The sink's in-memory counters (no ClickHouse query, see sinks/landing.py)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{stack.sink_status_port}/counters", timeout=10) as r:
        return json.load(r)


def verify_final(stack: LocalStack, base: int, expected: int, timeout_s: float,
                 check: Callable[[], None] | None = None) -> dict:
    """One ``count() FINAL`` after the counters say done. Counters may run ahead of distinct
    rows (a replayed batch counts twice), so re-read once a second until FINAL agrees."""
    deadline = time.monotonic() + timeout_s
    reads = 0
    while True:
        t0 = time.monotonic()
        st = stack.sink_status()
        reads += 1
        if _final_total(st) - base >= expected:
            return {"status": st, "wall_ms": time.time() * 1000, "reads": reads,
                    "query_ms": round((time.monotonic() - t0) * 1000, 1)}
        if check:
            check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s}s: count() FINAL shows "
                               f"{_final_total(st) - base} of {expected} CDRs landed")
        time.sleep(1.0)


class StatusPoller(threading.Thread):
    """Polls the sink's /counters at a fixed interval and keeps (reply wall ms, landed rows)."""

    def __init__(self, stack: LocalStack, interval_s: float, final: bool = False):
        super().__init__(name="bench-status-poller", daemon=True)
        self.stack = stack
        self.final = final
        self.interval_s = interval_s
        self.samples: list[tuple[float, int]] = []
        self.query_ms: list[float] = []
        self.last: dict = {}
        self.error: Exception | None = None
        self._halt = threading.Event()
        self._new = threading.Condition()

    def run(self) -> None:
        errors = 0
        while not self._halt.is_set():
            t0 = time.monotonic()
            try:
                st = self.stack.sink_status() if self.final else sink_counters(self.stack)
                if self.final:   # the same shape as /counters, so the waits read one field
                    st = {**st, "rows_landed": st["landed"]}
            except Exception as exc:   # a slow or restarting sink: retry, give up after many
                errors += 1
                if errors > 50:
                    self.error = exc
                    return
                self._halt.wait(self.interval_s)
                continue
            t1 = time.monotonic()
            with self._new:
                self.last = st
                self.samples.append((time.time() * 1000, _landed_total(st)))
                self.query_ms.append((t1 - t0) * 1000)
                self._new.notify_all()
            self._halt.wait(max(0.0, self.interval_s - (t1 - t0)))

    def landed(self) -> int:
        with self._new:
            return self.samples[-1][1] if self.samples else 0

    def wait_for(self, pred: Callable[[dict], bool], timeout_s: float, what: str,
                 check: Callable[[], None] | None = None, tick: Callable[[dict], None] | None = None) -> dict:
        """Wait for a status reply that satisfies ``pred``; return it (with its reply wall time)."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while True:
            with self._new:
                if len(self.samples) == seen:
                    self._new.wait(0.5)
                n = len(self.samples)
                st = self.last
                wall_ms = self.samples[-1][0] if self.samples else 0.0
            if n > seen and st:
                if pred(st):
                    return {"status": st, "wall_ms": wall_ms}
                if tick:
                    tick(st)
            seen = n
            if self.error:
                raise RuntimeError(f"sink status polling failed: {self.error}")
            if check:
                check()
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout_s}s waiting for {what}")

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def _landed_total(st: dict) -> int:
    """From a /counters reply."""
    landed = st.get("rows_landed", {})
    return landed.get("cdr_rated", 0) + landed.get("cdr_rejected", 0)


def _final_total(st: dict) -> int:
    """From a /status reply (count() FINAL)."""
    landed = st.get("landed", {})
    return landed.get("cdr_rated", 0) + landed.get("cdr_rejected", 0)


class BarringWatcher(threading.Thread):
    """Reads account.barring (assign, from the beginning) and keeps the latencies of the events
    of accounts whose id starts with ``prefix``."""

    def __init__(self, client_conf: dict, prefix: str):
        super().__init__(name="bench-barring-watcher", daemon=True)
        self.client_conf = client_conf
        self.prefix = prefix
        self.kafka_lat: list[float] = []
        self.recv_lat: list[float] = []
        self.by_reason: dict[str, int] = defaultdict(int)
        self.messages = 0
        self.last_msg = time.monotonic()
        self.error: Exception | None = None
        self._halt = threading.Event()
        self.ready = threading.Event()

    def run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        try:
            c = Consumer({**self.client_conf, "group.id": f"cdrflow-bench-barring-{time.time_ns()}",
                          "enable.auto.commit": False, "fetch.wait.max.ms": 10})
            parts = c.list_topics(topics.BARRING, timeout=10).topics[topics.BARRING].partitions
            # assign(), not subscribe(): a group join on tansu costs about half the session timeout.
            c.assign([TopicPartition(topics.BARRING, p, OFFSET_BEGINNING) for p in parts])
        except Exception as exc:
            self.error = exc
            self.ready.set()
            return
        self.ready.set()
        try:
            while not self._halt.is_set():
                m = c.poll(0.05)
                if m is None or m.error():
                    continue
                recv_ms = time.time() * 1000
                self.messages += 1
                self.last_msg = time.monotonic()
                try:
                    _, ev = codecs.decode(m.value())
                except Exception:
                    continue
                if not str(ev.get("account", "")).startswith(self.prefix) or not ev.get("cause_ingest_ms"):
                    continue
                self.by_reason[ev["reason"]] += 1
                self.kafka_lat.append(m.timestamp()[1] - ev["cause_ingest_ms"])
                self.recv_lat.append(recv_ms - ev["cause_ingest_ms"])
        finally:
            c.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(15)


# ------------------------------------------------------------------------------ publishing

def publish_timed(pub: Publisher, records: list[dict], mode: str, batch_size: int,
                  on_chunk: Callable[[int], None] | None = None) -> tuple[list[tuple[int, float]], int]:
    """Publish as fast as the producer takes it; returns (publish marks, Kafka messages).

    A mark is (cumulative CDRs, wall ms just before the chunk was produced). A chunk is one
    container in batch mode and 1000 records in single mode.
    """
    chunk = batch_size if mode == "batch" else 1000
    marks: list[tuple[int, float]] = []
    messages = 0
    for i in range(0, len(records), chunk):
        part = records[i:i + chunk]
        t = time.time() * 1000
        messages += pub.cdrs(part, mode, batch_size)
        marks.append((i + len(part), t))
        if on_chunk:
            on_chunk(len(part))
    return marks, messages


def publish_paced(pub: Publisher, records: list[dict], mode: str, batch_size: int, rate: float,
                  tick_s: float = 0.05, on_chunk: Callable[[int], None] | None = None
                  ) -> tuple[list[tuple[int, float]], int, float]:
    """Publish at ``rate`` CDRs/s: every ``tick_s`` the CDRs due so far are sent (in batch mode as
    containers of at most ``batch_size``). Returns (marks, Kafka messages, achieved rate)."""
    marks: list[tuple[int, float]] = []
    sent = messages = 0
    t0 = time.monotonic()
    n = len(records)
    while sent < n:
        due = min(n, int(rate * (time.monotonic() - t0)) + 1)
        if due > sent:
            part = records[sent:due]
            t = time.time() * 1000
            messages += pub.cdrs(part, mode, batch_size)
            pub.producer.poll(0)
            sent = due
            marks.append((sent, t))
            if on_chunk:
                on_chunk(len(part))
        next_tick = t0 + (len(marks)) * tick_s
        time.sleep(max(0.0, min(tick_s, next_tick - time.monotonic())))
    pub.flush()
    elapsed = time.monotonic() - t0
    return marks, messages, (n / elapsed if elapsed > 0 else 0.0)


# ------------------------------------------------------------------------------ raw ceiling

def raw_limit(client_conf: dict, expect_cdrs: int, timeout_s: float = 120, keep_cdrs: int = 0) -> dict:
    """confluent-kafka consume (assign all partitions from the beginning) + fastavro decode.

    Returns the rate and, when ``keep_cdrs`` > 0, the first messages (as ``Msg``) covering at
    least that many CDRs, for the stage profile.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from streams.msg import Msg

    c = Consumer({**client_conf, "group.id": f"cdrflow-bench-raw-{time.time_ns()}",
                  "enable.auto.commit": False, "fetch.max.bytes": 64 << 20,
                  "max.partition.fetch.bytes": 16 << 20})
    parts = c.list_topics(topics.RAW, timeout=10).topics[topics.RAW].partitions
    c.assign([TopicPartition(topics.RAW, p, OFFSET_BEGINNING) for p in parts])
    sb = codecs.book()
    decoded = messages = 0
    kept: list = []
    kept_cdrs = 0
    t_first = None
    deadline = time.monotonic() + timeout_s
    try:
        while decoded < expect_cdrs and time.monotonic() < deadline:
            batch = c.consume(1000, 0.2)
            if not batch:
                continue
            if t_first is None:
                t_first = time.perf_counter()
            for m in batch:
                if m.error():
                    continue
                v = m.value()
                messages += 1
                if codecs.is_container(v):
                    decoded += len(codecs.decode_container(v, max_items=1 << 30)[1])
                    n = None
                else:
                    codecs.decode(v, sb)
                    decoded += 1
                    n = 1
                if kept_cdrs < keep_cdrs:
                    kept.append(Msg(m.topic(), m.partition(), m.offset(), m.timestamp()[1], v))
                    kept_cdrs = decoded if n is None else kept_cdrs + 1
        elapsed = time.perf_counter() - t_first if t_first else 0.0
    finally:
        c.close()
    return {"cdrs": decoded, "messages": messages, "seconds": round(elapsed, 3),
            "cdrs_per_s": round(decoded / elapsed, 1) if elapsed else None, "kept": kept}


# ------------------------------------------------------------------------------ stage profile

def stage_profile(msgs: list, accounts: list[SimAccount], partitions: int, batch_cdrs: int = 1000,
                  horizon_days: int = 35) -> dict:
    """Per-stage throughput of the same input in this process (no Kafka, no Faust).

    Normalise chunks of about ``batch_cdrs`` CDRs (what a take_events batch holds at these rates),
    encode one canonical batch per account partition (what the normalise agent sends), charge each
    with ``charge_partition`` against a dict store, encode the outputs, and serialise each touched
    account's state with Faust's json codec (what a table write costs for the changelog).
    """
    from faust.serializers import codecs as faust_codecs

    from streams.core import credit
    from streams.core.normalize import Limits
    from streams.mediation import Normalizer, load_sources
    from streams.msg import Msg
    from streams.pipeline import charge_partition
    from streams.tariffs import current_book

    now = utc_now_ms()
    times: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    book = current_book()

    def rate(cdr, plan):
        return book.rate(cdr, plan=plan)

    # Decode only (the ceiling, without Kafka).
    t = time.perf_counter()
    n_in = 0
    for m in msgs:
        if codecs.is_container(m.value):
            n_in += len(codecs.decode_container(m.value, max_items=1 << 30)[1])
        else:
            codecs.decode(m.value)
            n_in += 1
    times["decode"] = time.perf_counter() - t

    # Provision the accounts in the dict store (not timed as a stage).
    from streams.partitioning import partition_for

    store: dict[str, dict | None] = {}
    key_nodes: dict[bytes, bytes | None] = {}
    by_part_cmds: dict[int, list] = defaultdict(list)
    for i, a in enumerate(accounts):
        by_part_cmds[partition_for(a.account, partitions)].append(
            Msg(topics.CONTROL, partition_for(a.account, partitions), i, now,
                codecs.encode(codecs.CONTROL, a.provision_command(now))))
    for part, cmd_msgs in by_part_cmds.items():
        res, states = charge_partition(cmd_msgs, store.get, rate, now, horizon_days)
        for acct in res.touched:
            store[acct] = states[acct]

    normalizer = Normalizer(partitions, sources=load_sources(None), limits=Limits(max_age_s=horizon_days * 86_400))
    per_msg = max(1, n_in // max(1, len(msgs)))
    chunk = max(1, batch_cdrs // per_msg)
    offsets: dict[int, int] = defaultdict(int)
    rated = rejected = events = 0
    for i in range(0, len(msgs), chunk):
        part_msgs = msgs[i:i + chunk]
        t = time.perf_counter()
        res = normalizer.run(part_msgs, now)
        times["normalize"] += time.perf_counter() - t
        rejected += len(res.rejects)
        for part, cdrs in res.by_partition.items():
            t = time.perf_counter()
            value = codecs.encode_batch(codecs.CANONICAL_BATCH, cdrs)
            times["encode_canonical"] += time.perf_counter() - t
            offsets[part] += 1
            cm = [Msg(topics.NORMALIZED, part, offsets[part], now, value)]
            t = time.perf_counter()
            out, states = charge_partition(cm, store.get, rate, now, horizon_days, keys=key_nodes.get)
            key_nodes.update(out.key_writes)      # the worker's second table (streams/core/dedup.py)
            times["charge"] += time.perf_counter() - t
            t = time.perf_counter()
            if out.rated:
                codecs.encode_batch(codecs.RATED_BATCH, out.rated)
            for ev in out.events:
                codecs.encode(codecs.BARRING, ev)
            for rej in out.rejects:
                codecs.encode(codecs.REJECTED, rej)
            for acct in out.touched:
                codecs.encode(codecs.STATE, credit.snapshot(states[acct], now))
            times["encode_outputs"] += time.perf_counter() - t
            t = time.perf_counter()
            for acct in out.touched:
                faust_codecs.dumps("json", states[acct])
            times["table_json"] += time.perf_counter() - t
            counts["table_writes"] += len(out.touched)
            counts["charge_calls"] += 1
            for acct in out.touched:
                store[acct] = states[acct]
            rated += len(out.rated)
            rejected += len(out.rejects)
            events += len(out.events)
    total = sum(times.values())
    stages = {}
    for name, secs in times.items():
        stages[name] = {"seconds": round(secs, 3),
                        "cdrs_per_s": round(n_in / secs, 1) if secs else None,
                        "us_per_cdr": round(secs * 1e6 / n_in, 2) if n_in else None,
                        "share": round(secs / total, 3) if total else None}
    return {"cdrs": n_in, "messages": len(msgs), "batch_cdrs": batch_cdrs, "rated": rated, "rejected": rejected,
            "barring_events": events, "charge_calls": counts["charge_calls"],
            "table_writes": counts["table_writes"], "stages": stages,
            "in_process_cdrs_per_s": round(n_in / total, 1) if total else None,
            "method": "single process, no Kafka/Faust: decode; Normalizer.run per ~batch_cdrs; one canonical "
                      "batch per partition; charge_partition; output Avro encodes; Faust json codec per touched state"}


# ------------------------------------------------------------------------------ the run

def latency_accounts(n: int, seed: int) -> list[SimAccount]:
    """Accounts with small credit (all 'heavy'), so they cross soft and hard limits quickly."""
    accts = make_accounts(n, seed=seed + 100, heavy_share=1.0)
    for i, a in enumerate(accts):
        a.account = f"LAT{i + 1:06d}"
    return accts


def run_bench(opts: BenchOptions, progress: Step | None = None) -> dict:
    """Run every phase and return the result dict (see the module docstring)."""
    if opts.mode not in ("single", "batch"):
        raise ValueError(f"mode must be single or batch, not {opts.mode!r}")
    step = progress or (lambda *a, **k: None)
    t_start = time.monotonic()
    own_workdir = opts.workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="cdrflow-bench-")) if own_workdir else opts.workdir
    stack = LocalStack(workdir, workers=opts.workers)
    poller: StatusPoller | None = None
    watcher: BarringWatcher | None = None
    result: dict = {"cdrs": opts.cdrs, "accounts": opts.accounts, "mode": opts.mode, "workers": opts.workers,
                    "batch_size": opts.batch_size if opts.mode == "batch" else None, "machine": machine_info()}
    ok = False
    try:
        step("starting tansu, workers and the ClickHouse sink", phase="setup")
        stack.start()
        stack.wait_workers_ready(120)
        pub = Publisher(stack.client_conf)
        now = utc_now_ms()
        accounts = make_accounts(opts.accounts, seed=opts.seed)
        lat_accounts = latency_accounts(opts.latency_accounts, opts.seed) if opts.latency else []
        step(f"provisioning {len(accounts) + len(lat_accounts)} accounts", phase="setup")
        # Provisioning scales with the account count (about 3k accounts/s here), so it gets the
        # run's own bound rather than a fixed one.
        stack.provision(pub, accounts + lat_accounts, now, max(300.0, opts.timeout_s))
        step(f"generating {opts.cdrs} CDRs", phase="setup")
        records = CdrGenerator(accounts, now, seed=opts.seed + 1).take(opts.cdrs)
        poller = StatusPoller(stack, opts.poll_ms / 1000, final=opts.poll_final)
        poller.start()
        poller.wait_for(lambda st: True, 30, "the first sink status")
        base = poller.landed()
        base_final = _final_total(stack.sink_status())   # before the clock starts
        pids = {name: ch.pid for name, ch in stack.children.items()}
        cpu0 = cpu_of(pids)

        # ---- phase 1: flood ------------------------------------------------------------------
        step(f"flood: publishing {opts.cdrs} CDRs ({opts.mode})", phase="publish", total=opts.cdrs)
        wall0 = time.time() * 1000
        t0 = time.monotonic()
        marks, messages = publish_timed(pub, records, opts.mode, opts.batch_size,
                                        on_chunk=lambda n: step(None, phase="publish", advance=n))
        pub.flush()
        publish_s = time.monotonic() - t0
        step("flood: waiting for every CDR to land", phase="land", total=opts.cdrs)
        done = poller.wait_for(lambda st: _landed_total(st) - base >= opts.cdrs, opts.timeout_s,
                               "every CDR to land as rated or rejected", check=stack.check_alive,
                               tick=lambda st: step(None, phase="land", completed=_landed_total(st) - base))
        step(None, phase="land", completed=opts.cdrs)
        cpu1 = cpu_of(pids)   # before the FINAL query, whose cost is not the pipeline's
        rows1 = _landed_total(done["status"]) - base
        final = verify_final(stack, base_final, opts.cdrs, opts.timeout_s, check=stack.check_alive)
        # The counters may run ahead of distinct rows only through replays; then FINAL decides.
        end_ms = done["wall_ms"] if final["reads"] == 1 else final["wall_ms"]
        e2e_s = (end_ms - wall0) / 1000
        landed1 = final["status"]["landed"]
        flood_lags = landing_lags(marks, poller.samples, base)
        e2e_rate = opts.cdrs / e2e_s if e2e_s > 0 else 0.0
        result.update({
            "messages": messages,
            "publish_seconds": round(publish_s, 3),
            "publish_cdrs_per_s": round(opts.cdrs / publish_s, 1) if publish_s else None,
            "end_to_end_seconds": round(e2e_s, 3),
            "end_to_end_cdrs_per_s": round(e2e_rate, 1),
            "landed_rated": landed1.get("cdr_rated", 0),
            "landed_rejected": landed1.get("cdr_rejected", 0),
            "final_verify": {"reads": final["reads"], "query_ms": final["query_ms"],
                             "counted_rows": rows1, "distinct_rows": _final_total(final["status"]) - base_final},
        })

        # ---- phase 2: raw ceiling --------------------------------------------------------------
        step("raw limit: confluent-kafka consume + fastavro decode of cdr.raw", phase="setup")
        keep = min(opts.cdrs, opts.profile_cdrs) if opts.stage_profile else 0
        raw = raw_limit(stack.client_conf, opts.cdrs, keep_cdrs=keep)
        kept = raw.pop("kept")
        result["raw_limit_cdrs_per_s"] = raw["cdrs_per_s"]
        result["raw_limit"] = raw
        result["ratio"] = round(e2e_rate / raw["cdrs_per_s"], 4) if raw["cdrs_per_s"] else None
        result["cpu_flood"] = cpu_per_cdr(cpu0, cpu1, opts.cdrs, rows1, raw["cdrs_per_s"])

        # ---- phase 3: latency at a paced rate --------------------------------------------------
        if opts.latency:
            rate = opts.rate or max(1.0, e2e_rate / 2)
            n_lat = max(1, int(rate * opts.latency_seconds))
            lat_records = CdrGenerator(lat_accounts, now, seed=opts.seed + 2, switch_id="sw-lat-1").take(n_lat)
            watcher = BarringWatcher(stack.client_conf, "LAT")
            watcher.start()
            watcher.ready.wait(15)
            if watcher.error:
                raise RuntimeError(f"barring watcher failed: {watcher.error}")
            # Let it read past the flood's barring events before the paced phase starts.
            catch_up = time.monotonic() + 5
            while time.monotonic() < catch_up and time.monotonic() - watcher.last_msg < 1.0:
                time.sleep(0.1)
            base2 = poller.landed()
            base2_final = _final_total(stack.sink_status())
            step(f"latency: {n_lat} CDRs paced at {rate:.0f}/s for {len(lat_accounts)} small-credit accounts",
                 phase="publish", total=n_lat, completed=0)
            marks2, messages2, achieved = publish_paced(
                pub, lat_records, opts.mode, opts.batch_size, rate,
                on_chunk=lambda n: step(None, phase="publish", advance=n))
            step("latency: waiting for the paced CDRs to land", phase="land", total=n_lat, completed=0)
            poller.wait_for(lambda st: _landed_total(st) - base2 >= n_lat, opts.timeout_s,
                            "the paced CDRs to land", check=stack.check_alive,
                            tick=lambda st: step(None, phase="land", completed=_landed_total(st) - base2))
            step(None, phase="land", completed=n_lat)
            verify_final(stack, base2_final, n_lat, opts.timeout_s, check=stack.check_alive)
            drain = time.monotonic() + 10
            time.sleep(1.0)
            while time.monotonic() < drain and time.monotonic() - watcher.last_msg < 1.5:
                time.sleep(0.1)
            watcher.stop()
            paced_lags = landing_lags(marks2, poller.samples, base2)
            result.update({
                "barring_latency_ms": percentiles(watcher.kafka_lat),
                "barring_latency_receive_ms": percentiles(watcher.recv_lat),
                "barring_latency_method": "Kafka timestamp of the account.barring message - cause_ingest_ms "
                                          "(Kafka timestamp of the raw message carrying the causing CDR); "
                                          "_receive: this consumer's receive time instead",
                "barring_events_by_reason": dict(watcher.by_reason),
                "latency_phase": {"rate_target_cdrs_per_s": round(rate, 1), "rate_achieved_cdrs_per_s": round(achieved, 1),
                                  "cdrs": n_lat, "messages": messages2, "accounts": len(lat_accounts),
                                  "share_of_end_to_end": round(rate / e2e_rate, 3) if e2e_rate else None},
                "landing_lag_ms_p99": percentiles(paced_lags)["p99"],
                "landing_lag_ms": percentiles(paced_lags) | {"phase": "latency (paced)"},
            })
        else:
            result["landing_lag_ms_p99"] = percentiles(flood_lags)["p99"]
        result["landing_lag_ms_flood"] = percentiles(flood_lags) | {
            "phase": "flood (publishing outruns the pipeline, so this is mostly queueing)"}
        result["landing_lag_method"] = LANDING_LAG_METHOD
        result["status_poll"] = {"endpoint": "/status (count() FINAL)" if opts.poll_final else "/counters",
                                 "interval_ms": opts.poll_ms,
                                 "query_ms": percentiles(poller.query_ms),
                                 "polls": len(poller.samples)}
        poller.stop()
        poller = None

        # ---- resources, then stop the stack ----------------------------------------------------
        result["peak_rss_mb"] = {name: peak_rss_mb(ch.pid) for name, ch in stack.children.items()}
        result["peak_rss_mb"]["bench"] = peak_rss_mb(os.getpid())
        result["cpu_seconds"] = {name: cpu_seconds(ch.pid) for name, ch in stack.children.items()}
        counts: dict = {}
        for name in list(stack.worker_ports):
            try:
                for k, v in stack.worker_stats(name).items():
                    counts[k] = counts.get(k, 0) + v
            except Exception:
                pass
        result["worker_counts"] = counts
        final = stack.sink_status()
        result["landed"] = final["landed"]
        pub = None                 # close the producer before its broker goes away
        stack.stop()

        # ---- phase 4: stage profile (nothing else running) -------------------------------------
        if opts.stage_profile and kept:
            step(f"stage profile: {sum(1 for _ in kept)} messages in-process", phase="setup")
            result["stage_profile"] = stage_profile(kept, accounts, stack.partitions)
        result["seconds_total"] = round(time.monotonic() - t_start, 1)
        result["workdir"] = None if own_workdir else str(workdir)
        ok = True
        return result
    finally:
        if watcher is not None and watcher.is_alive():
            watcher.stop()
        if poller is not None:
            poller.stop()
        stack.stop()
        if own_workdir:
            if ok:
                shutil.rmtree(workdir, ignore_errors=True)
            else:
                step(f"the run failed; logs and data are kept in {workdir}", phase="setup")
