"""ClickHouse landing: consume the output topics, insert in batches, then commit offsets.

Flush order (after OpenMeter's sink): flush on count or time → dedupe within the batch by key →
columnar insert per table (dedup token where the server has one) → synchronous offset commit.
Offsets are committed only after every table of the batch landed, so a crash anywhere replays
the batch; the ReplacingMergeTree keys (and the tokens) make that replay land once.

Runs as its own process (``python -m sinks``), never inside Faust: clickhouse-driver and chdb
block, and would stall Faust's event loop.
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from hashlib import blake2b
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

from sinks.clickhouse import ddl
from sinks.clickhouse.backend import Backend, open_backend
from sinks.clickhouse.columns import to_columns

log = logging.getLogger("cdrflow.sink")

TOPICS = ("cdr.rated", "cdr.rejected", "account.barring", "account.state", "account.notifications",
          "cdr.commissions")

# Topics whose records share a type with another table's but land apart: partner commissions are
# RatedCdr records, yet they are the partner's money, not the customer's bill.
TOPIC_TABLE = {"cdr.commissions": "cdr_commissions"}
GROUP = "cdrflow-sink"

# Record type → table. Routing by the decoded type, not by topic, keeps a mis-published record
# out of the wrong table.
TABLE_OF = {
    "cdr.v1.RatedCdr": "cdr_rated",
    "cdr.v1.RatedBatch": "cdr_rated",
    "cdr.v1.RejectedCdr": "cdr_rejected",
    "account.v1.BarringEvent": "barring_events",
    "account.v1.AccountState": "account_state_history",
    "account.v1.Notification": "notifications",
}

# Messages that do not decode, or decode to a type with no table, land here with their bytes.
ERRORS_TABLE = "landing_errors"
MAX_ERROR_DETAIL = 1000
# landing_errors.reason of a message that decodes but whose rows its table refuses (a type, range
# or NULL the columns cannot hold). Not a CDR reject reason (streams/core/reasons.py): the workers
# wrote these records, so the fix is in code, and the bytes are kept for a replay after it.
UNFIT_ROW = "unfit_row"
# ClickHouse error codes that mean "this data does not fit the column", not "the server is unwell"
# (names checked with chdb's errorCodeToName()). Any other server error is retried as an outage.
DATA_ERROR_CODES = frozenset({
    6,    # CANNOT_PARSE_TEXT
    27,   # CANNOT_PARSE_INPUT_ASSERTION_FAILED
    38,   # CANNOT_PARSE_DATE
    41,   # CANNOT_PARSE_DATETIME
    53,   # TYPE_MISMATCH
    69,   # ARGUMENT_OUT_OF_BOUND
    70,   # CANNOT_CONVERT_TYPE
    72,   # CANNOT_PARSE_NUMBER
    117,  # INCORRECT_DATA
    131,  # TOO_LARGE_STRING_SIZE
    190,  # SIZES_OF_ARRAYS_DONT_MATCH
    321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
    407,  # DECIMAL_OVERFLOW
})


# ------------------------------------------------------------------------------ pure helpers

def records_of(schema_name: str, record: dict) -> list[dict]:
    """A RatedBatch carries many RatedCdr; every other type is one record per message."""
    if schema_name == "cdr.v1.RatedBatch":
        return list(record["records"])
    return [record]


def row_key(table: str, rec: dict) -> Any:
    if table in ("cdr_rated", "cdr_commissions"):
        return rec["cdr_key"]
    if table == "cdr_rejected":
        return rec["reject_id"]
    if table == "notifications":
        return rec["notification_id"]
    if table == ERRORS_TABLE:
        return (rec["source_topic"], rec["source_partition"], rec["source_offset"])
    return (rec["account"], rec["seq"])


def dedupe(table: str, records: list[dict]) -> list[dict]:
    """One row per key. For rated CDRs the highest rating_version wins (ties: the later one),
    as the table would decide; elsewhere a replayed record is identical, so the last is kept."""
    best: dict[Any, dict] = {}
    for rec in records:
        key = row_key(table, rec)
        if table == "cdr_rated":
            prev = best.get(key)
            if prev is not None and prev.get("rating_version", 1) > rec.get("rating_version", 1):
                continue
        best[key] = rec
    return list(best.values())


def dedup_token(table: str, ranges: dict[tuple[str, int], tuple[int, int]], records: list[dict]) -> str:
    """insert_deduplication_token for one table's part of a batch.

    The offset ranges make a retry of the same batch reuse the token. A digest of the row keys
    is added because the server silently drops a block whose token it has seen even when the
    content differs — e.g. after an in-memory broker restarts and offsets are reused.
    """
    span = ",".join(f"{t}:{p}:{a}-{b}" for (t, p), (a, b) in sorted(ranges.items()))
    h = blake2b(digest_size=12)
    keys = sorted([repr((row_key(table, r), r.get("rating_version"))) for r in records])
    # One update of the same bytes as one per key followed by \x1f (tokens stay as they were).
    if keys:
        h.update(("\x1f".join(keys) + "\x1f").encode())
    return f"{table}|{span}|{h.hexdigest()}"


def is_unfit(exc: BaseException) -> bool:
    """True when an insert's ``exc`` says the rows do not fit their table (a retry cannot help),
    False for anything that may pass on retry (connection lost, server down, a missing migration).

    pyarrow (chdb) and clickhouse-driver (native) convert values before any byte is sent and raise
    TypeError / ValueError (pyarrow's ArrowInvalid is one) / OverflowError; the server reports a
    data error by code. KeyError is left out: the chdb backend raises it for a column the table
    lacks, which is a migration problem, not a row problem.
    """
    if isinstance(exc, (ConnectionError, TimeoutError, OSError, EOFError, KeyError)):
        return False
    if isinstance(exc, (TypeError, ValueError, OverflowError)):
        return True
    code = getattr(exc, "code", None)     # clickhouse-driver's ServerException
    if not isinstance(code, int):
        import re

        m = re.search(r"Code: (\d+)\.", str(exc))   # chdb's RuntimeError text
        code = int(m.group(1)) if m else None
    return code in DATA_ERROR_CODES


def commit_offsets(ranges: dict[tuple[str, int], tuple[int, int]]) -> list[tuple[str, int, int]]:
    """Kafka commits the next offset to read, i.e. last + 1."""
    return [(t, p, last + 1) for (t, p), (_first, last) in sorted(ranges.items())]


def backoff_s(attempt: int, base: float = 0.5, cap: float = 30.0) -> float:
    return min(cap, base * (2 ** min(attempt, 16)))


class _Unconvertible(ValueError):
    """to_columns refused the rows (raised from the original error)."""


def _ranges_of(sources) -> dict[tuple[str, int], tuple[int, int]]:
    out: dict[tuple[str, int], tuple[int, int]] = {}
    for topic, partition, offset, _raw in sources:
        first, last = out.get((topic, partition), (offset, offset))
        out[(topic, partition)] = (min(first, offset), max(last, offset))
    return out


def _single(groups: list) -> bool:
    return len(groups) == 1 and len(groups[0][1]) <= 1


def _halves(groups: list) -> tuple[list, list]:
    """Split by messages while there are several, then by the rows of the one message."""
    if len(groups) > 1:
        mid = len(groups) // 2
        return groups[:mid], groups[mid:]
    source, records = groups[0]
    mid = len(records) // 2
    return [(source, records[:mid])], [(source, records[mid:])]


@dataclass
class Batch:
    """Rows waiting to land plus the offsets they came from."""

    rows: dict[str, list[dict]] = field(default_factory=dict)
    ranges: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    count: int = 0
    started: float = 0.0
    landed_tables: set[str] = field(default_factory=set)
    # Per table, (source message, number of its records) in row order, so rows a table refuses
    # can be traced back to the message (topic, partition, offset, raw bytes) that carried them.
    spans: dict[str, list[tuple[tuple[str, int, int, bytes], int]]] = field(default_factory=dict)

    def note_offset(self, topic: str, partition: int, offset: int, now: float) -> None:
        if not self.ranges:
            self.started = now
        first, last = self.ranges.get((topic, partition), (offset, offset))
        self.ranges[(topic, partition)] = (min(first, offset), max(last, offset))

    def add(self, table: str, records: list[dict], source: tuple[str, int, int, bytes] | None = None) -> None:
        self.rows.setdefault(table, []).extend(records)
        self.count += len(records)
        if source is not None:
            self.spans.setdefault(table, []).append((source, len(records)))

    def groups(self, table: str) -> list[tuple[tuple[str, int, int, bytes], list[dict]]] | None:
        """The table's rows per source message, or None when some rows have no known source."""
        rows, spans = self.rows.get(table, []), self.spans.get(table, [])
        if sum(n for _, n in spans) != len(rows):
            return None
        out, pos = [], 0
        for source, n in spans:
            if n:      # an empty RatedBatch has nothing to land or to refuse
                out.append((source, rows[pos:pos + n]))
            pos += n
        return out

    def due(self, now: float, max_rows: int, max_age_s: float) -> bool:
        return bool(self.ranges) and (self.count >= max_rows or now - self.started >= max_age_s)

    def table_ranges(self, table: str) -> dict[tuple[str, int], tuple[int, int]]:
        topics = {t for t, tbl in DEFAULT_TOPIC_TABLE.items() if tbl == table}
        return {k: v for k, v in self.ranges.items() if k[0] in topics} or dict(self.ranges)


DEFAULT_TOPIC_TABLE = {"cdr.rated": "cdr_rated", "cdr.rejected": "cdr_rejected",
                       "account.barring": "barring_events", "account.state": "account_state_history",
                       "account.notifications": "notifications", "cdr.commissions": "cdr_commissions"}


# ----------------------------------------------------------------------------------- metrics

class Metrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter

        # A private registry: several sinks in one test process must not collide.
        self.registry = CollectorRegistry()
        self.rows = Counter("cdrflow_sink_rows_inserted", "Rows inserted into ClickHouse", ["table"],
                            registry=self.registry)
        self.batches = Counter("cdrflow_sink_batches", "Batches landed and committed", registry=self.registry)
        self.retries = Counter("cdrflow_sink_retries", "Failed insert attempts retried", registry=self.registry)
        self.undecodable = Counter("cdrflow_sink_undecodable", "Messages that did not decode",
                                   registry=self.registry)
        self.unfit = Counter("cdrflow_sink_unfit_rows", "Messages whose rows their table refused "
                             "(landed in landing_errors as unfit_row)", registry=self.registry)
        self.n_batches = self.n_rows = self.n_retries = self.n_undecodable = self.n_unfit = 0
        # Rows inserted per table since start (after in-batch dedupe), kept by the landing loop so
        # progress can be read without a query: `count() FINAL` per poll made the sink spend
        # most of its CPU answering the benchmark. Replays can count a row twice; FINAL cannot.
        self.landed_rows: dict[str, int] = {}
        # Consumer lag per partition = (last offset seen + 1) − committed offset: read but not yet
        # landed and committed. Deliberately not against the broker's high watermark: tansu's
        # ListOffsets high watermark is wrong, so lag computed from it would be meaningless.
        # Computed when scraped: setting a labelled gauge per message was ~7 % of the sink's CPU.
        self.registry.register(_LagCollector(self))
        self.seen: dict[tuple[str, int], int] = {}
        self.committed: dict[tuple[str, int], int] = {}
        self.first_seen: dict[tuple[str, int], int] = {}

    def lag_of(self, key: tuple[str, int]) -> int:
        seen = self.seen.get(key)
        if seen is None:
            return 0
        # Before this process commits a partition, count from the first offset it read there.
        base = self.committed.get(key, self.first_seen.get(key, seen + 1))
        return max(0, seen + 1 - base)

    def note_seen(self, topic: str, partition: int, offset: int) -> None:
        key = (topic, partition)
        self.first_seen.setdefault(key, offset)
        if offset > self.seen.get(key, -1):
            self.seen[key] = offset

    def note_committed(self, topic: str, partition: int, next_offset: int) -> None:
        self.committed[(topic, partition)] = next_offset

    def lag_by_partition(self) -> dict[str, int]:
        return {f"{t}:{p}": self.lag_of((t, p)) for t, p in sorted(self.seen)}


class _LagCollector:
    """``cdrflow_sink_consumer_lag{topic, partition}`` from the offsets the sink noted."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        fam = GaugeMetricFamily("cdrflow_sink_consumer_lag", "Messages read but not yet landed and committed",
                                labels=["topic", "partition"])
        for key in sorted(self.metrics.seen.copy()):      # copy(): atomic, the landing loop adds keys
            fam.add_metric([key[0], str(key[1])], self.metrics.lag_of(key))
        yield fam


# -------------------------------------------------------------------------------------- sink

class Sink:
    def __init__(self, consumer, backend: Backend, *, max_rows: int = 20_000, max_age_s: float = 0.5,
                 decode: Callable[[bytes], tuple[str, dict]] | None = None) -> None:
        if decode is None:
            from streams.codecs import decode as decode
        self.consumer = consumer
        self.backend = backend
        self.decode = decode
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self.batch = Batch()
        self.metrics = Metrics()
        self.stopping = threading.Event()
        self.version = backend.version()

    # Step 0: gather. Every message's offset is noted, even one that does not decode, so the
    # commit moves past it instead of re-reading it forever.
    def add_message(self, msg) -> None:
        now = time.monotonic()
        self.batch.note_offset(msg.topic(), msg.partition(), msg.offset(), now)
        self.metrics.note_seen(msg.topic(), msg.partition(), msg.offset())
        value = msg.value()
        if value is None:
            return  # a tombstone on a compacted topic: nothing to land
        try:
            name, record = self.decode(value)
        except Exception as exc:
            self._land_error(msg, value, getattr(getattr(exc, "reason", None), "value", "undecodable"), repr(exc))
            return
        table = TOPIC_TABLE.get(msg.topic()) or TABLE_OF.get(name)
        if table is None:
            self._land_error(msg, value, "unknown_schema", f"no landing table for record type {name!r}")
            return
        self.batch.add(table, records_of(name, record), (msg.topic(), msg.partition(), msg.offset(), value))

    def _land_error(self, msg, value: bytes, reason: str, detail: str) -> None:
        # The workers wrote these topics, so this is no CDR to reject; but dropping it would lose
        # it without a trace once its offset commits: it lands in landing_errors with its bytes.
        self.metrics.undecodable.inc()
        self.metrics.n_undecodable += 1
        log.error("event=undecodable topic=%s partition=%d offset=%d reason=%s error=%s",
                  msg.topic(), msg.partition(), msg.offset(), reason, detail[:200])
        self.batch.add(ERRORS_TABLE, [{
            "source_topic": msg.topic(), "source_partition": msg.partition(), "source_offset": msg.offset(),
            "reason": reason, "detail": detail[:MAX_ERROR_DETAIL], "raw": bytes(value),
            "landed_at_ms": time.time_ns() // 1_000_000}])

    def insert_batch(self) -> int:
        """Insert every table of the batch not landed yet; raises if ClickHouse fails.

        Rows a table refuses (see is_unfit) are isolated message by message and land in
        landing_errors as ``unfit_row`` with their message's bytes, so they cannot hold back the
        rest of the stream; an outage still raises and the whole batch is retried.
        """
        inserted = 0
        for table, records in sorted(self.batch.rows.items()):
            if table in self.batch.landed_tables or not records:
                continue
            try:
                n = self._insert_rows(table, records, self.batch.table_ranges(table))
            except Exception as exc:
                groups = self.batch.groups(table)
                if groups is None or not (isinstance(exc, _Unconvertible) or is_unfit(exc)):
                    raise
                log.warning("event=unfit_rows_isolating table=%s messages=%d error=%r",
                            table, len(groups), exc)
                n = self._insert_isolating(table, groups, exc)
            # Remember success per table, so a retry after a later table failed re-sends only that.
            self.batch.landed_tables.add(table)
            inserted += n
        return inserted

    def _insert_rows(self, table: str, records: list[dict], ranges: dict) -> int:
        # Dedupe within the batch: fewer rows to send, and a batch never fights itself in FINAL.
        rows = dedupe(table, records)
        try:
            names, cols = to_columns(table, rows)
        except Exception as exc:
            # Pure conversion, no I/O: the rows themselves are at fault, whatever the exception.
            raise _Unconvertible(repr(exc)) from exc
        # Token from offsets + keys: a retry of this exact batch is dropped by the server.
        token = dedup_token(table, ranges, rows)
        self.backend.insert_columns(f"{self.backend.database}.{table}", names, cols,
                                    settings=ddl.insert_settings(self.version, token))
        self.metrics.rows.labels(table).inc(len(rows))
        self.metrics.n_rows += len(rows)
        self.metrics.landed_rows[table] = self.metrics.landed_rows.get(table, 0) + len(rows)
        return len(rows)

    def _insert_isolating(self, table: str, groups: list, exc: BaseException) -> int:
        """Bisect the table's rows, message by message and then row by row within a message: parts
        that insert land, a single row that still does not fit is set aside, and its message lands
        in landing_errors once (raw bytes, the refused rows' keys, the first error). A failure that
        is not about the data (ClickHouse went away meanwhile) raises, and the batch is retried as
        a whole (insert tokens and ReplacingMergeTree keep that idempotent).
        Cost: about 2·k·log2(rows) inserts for k unfit rows, once."""
        unfit: list[tuple[tuple[str, int, int, bytes], dict, BaseException]] = []
        if _single(groups):    # the whole-table attempt was this one row
            unfit.append((groups[0][0], groups[0][1][0], exc))
            landed = 0
        else:
            landed = sum(self._bisect(table, half, unfit) for half in _halves(groups))
        by_source: dict[tuple[str, int, int, bytes], list[tuple[dict, BaseException]]] = {}
        for source, rec, err in unfit:
            by_source.setdefault(source, []).append((rec, err))
        errors = []
        for (topic, partition, offset, raw), items in by_source.items():
            keys = []
            for rec, _err in items[:5]:
                try:
                    keys.append(repr(row_key(table, rec)))
                except Exception:          # the key itself may be what is missing
                    keys.append("?")
            first = items[0][1]
            detail = (f"{table}: {len(items)} row(s) do not fit (keys {', '.join(keys)}): "
                      f"{first.__cause__ or first!r}")
            log.error("event=unfit_row table=%s topic=%s partition=%d offset=%d error=%s",
                      table, topic, partition, offset, detail[:200])
            errors.append({"source_topic": topic, "source_partition": partition, "source_offset": offset,
                           "reason": UNFIT_ROW, "detail": detail[:MAX_ERROR_DETAIL], "raw": bytes(raw),
                           "landed_at_ms": time.time_ns() // 1_000_000})
        if errors:
            self._insert_rows(ERRORS_TABLE, errors, _ranges_of(by_source))
            self.metrics.unfit.inc(len(errors))
            self.metrics.n_unfit += len(errors)
        return landed

    def _bisect(self, table: str, groups: list, unfit: list) -> int:
        try:
            return self._insert_rows(table, [r for _, recs in groups for r in recs],
                                     _ranges_of(src for src, _ in groups))
        except Exception as exc:
            if not (isinstance(exc, _Unconvertible) or is_unfit(exc)):
                raise
            if _single(groups):
                unfit.append((groups[0][0], groups[0][1][0], exc))
                return 0
        return sum(self._bisect(table, half, unfit) for half in _halves(groups))

    def commit(self) -> None:
        from confluent_kafka import TopicPartition

        offsets = [TopicPartition(t, p, o) for t, p, o in commit_offsets(self.batch.ranges)]
        # Synchronous: the next batch must not start until Kafka knows these rows are safe.
        self.consumer.commit(offsets=offsets, asynchronous=False)
        for t, p, o in commit_offsets(self.batch.ranges):
            self.metrics.note_committed(t, p, o)

    def flush(self, give_up_after_s: float | None = None) -> bool:
        """Land and commit the pending batch, retrying with backoff. False if it gave up."""
        if not self.batch.ranges:
            return True
        attempt = 0
        deadline = None if give_up_after_s is None else time.monotonic() + give_up_after_s
        paused = []
        try:
            while True:
                try:
                    n = self.insert_batch()
                    break
                except Exception as exc:
                    self.metrics.retries.inc()
                    self.metrics.n_retries += 1
                    delay = backoff_s(attempt)
                    attempt += 1
                    log.warning("event=insert_failed attempt=%d retry_in_s=%.1f error=%r", attempt, delay, exc)
                    if deadline is not None and time.monotonic() + delay > deadline:
                        return False
                    if not paused:
                        # Bounded memory: stop fetching while the batch is stuck, but keep polling
                        # so the group does not evict us for exceeding max.poll.interval.ms.
                        paused = list(self.consumer.assignment())
                        self.consumer.pause(paused)
                    self._wait(delay)
            # Only now, with every row landed, may the offsets move.
            self.commit()
        finally:
            if paused:
                self.consumer.resume(paused)
        self.metrics.batches.inc()
        self.metrics.n_batches += 1
        log.info("event=batch_landed rows=%d messages_ranges=%d", n, len(self.batch.ranges))
        self.batch = Batch()
        return True

    def _wait(self, delay: float) -> None:
        end = time.monotonic() + delay
        while time.monotonic() < end:
            # Partitions are paused, so this returns no records; it only services the group.
            self.consumer.poll(min(0.5, max(0.0, end - time.monotonic())))

    def on_revoke(self, consumer, partitions) -> None:
        # Land what we hold before another member takes the partitions; if ClickHouse is down,
        # drop the batch uncommitted: the new owner re-reads it (at-least-once, landed once).
        if self.batch.ranges and not self.flush(give_up_after_s=10):
            log.warning("event=batch_dropped_on_revoke rows=%d", self.batch.count)
            self.batch = Batch()

    def run(self, topics=TOPICS) -> int:
        from confluent_kafka import KafkaError

        self.consumer.subscribe(list(topics), on_revoke=self.on_revoke)
        while not self.stopping.is_set():
            room = self.max_rows - self.batch.count
            if room > 0:
                for msg in self.consumer.consume(num_messages=min(room, 5_000), timeout=0.1):
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:  # end of partition is no error
                            log.warning("event=consumer_error error=%s", err)
                        continue
                    self.add_message(msg)
            if self.batch.due(time.monotonic(), self.max_rows, self.max_age_s):
                self.flush()
        # SIGTERM: land and commit what we hold, then leave cleanly.
        ok = self.flush(give_up_after_s=60)
        if not ok:
            log.error("event=shutdown_unflushed rows=%d (uncommitted; will be re-read)", self.batch.count)
        return 0 if ok else 1

    def counters(self) -> dict:
        """Progress from memory only (no ClickHouse query): cheap enough to poll often."""
        m = self.metrics
        # dict() of a plain dict is one C call under the GIL: a consistent copy while the
        # landing thread keeps adding.
        return {
            "rows_landed": dict(m.landed_rows),
            "batches": m.n_batches,
            "rows_inserted": m.n_rows,
            "retries": m.n_retries,
            "undecodable": m.n_undecodable,
            "unfit": m.n_unfit,
            "lag": m.lag_by_partition(),
        }

    def status(self) -> dict:
        return {
            "landed": ddl.landed_counts(self.backend),
            "money_total_micros": ddl.money_total_micros(self.backend),
            "batches": self.metrics.n_batches,
            "rows_inserted": self.metrics.n_rows,
            "retries": self.metrics.n_retries,
            "undecodable": self.metrics.n_undecodable,
            "lag": self.metrics.lag_by_partition(),
        }


# ------------------------------------------------------------------------------- HTTP status

def serve_status(sink: Sink, port: int, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    from prometheus_client import exposition

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server naming)
            if self.path.split("?")[0] == "/status":
                try:
                    body, code = json.dumps(sink.status()).encode(), 200
                except Exception as exc:  # ClickHouse down: say so rather than hang up
                    body, code = json.dumps({"error": repr(exc)}).encode(), 503
                ctype = "application/json"
            elif self.path.split("?")[0] == "/counters":
                body, code, ctype = json.dumps(sink.counters()).encode(), 200, "application/json"
            elif self.path.split("?")[0] == "/metrics":
                body, code, ctype = exposition.generate_latest(sink.metrics.registry), 200, exposition.CONTENT_TYPE_LATEST
            else:
                body, code, ctype = b"not found\n", 404, "text/plain"
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="sink-status", daemon=True).start()
    return server


# ---------------------------------------------------------------------------------------- main

def parse_args(argv=None) -> argparse.Namespace:
    from streams.settings import Settings
    # A fresh read (not get_settings()'s cached one): defaults follow the environment at parse time.
    st = Settings()
    p = argparse.ArgumentParser(prog="cdrflow sink", description="Land cdrflow topics into ClickHouse.")
    p.add_argument("--bootstrap", default=st.kafka_bootstrap,
                   help="Kafka bootstrap servers (env CDRFLOW_KAFKA_BOOTSTRAP)")
    p.add_argument("--clickhouse", default=st.clickhouse,
                   help="clickhouse://user:pass@host:port/db, chdb://PATH or a path (env CDRFLOW_CLICKHOUSE)")
    p.add_argument("--status-port", type=int, default=st.sink_status_port,
                   help="HTTP /status and /metrics port; 0 = off (env CDRFLOW_SINK_STATUS_PORT)")
    p.add_argument("--status-host", default=st.sink_status_host,
                   help="address of /status and /metrics (env CDRFLOW_SINK_STATUS_HOST; 0.0.0.0 for Prometheus "
                        "in another container)")
    p.add_argument("--portal-port", type=int, default=st.sink_portal_port,
                   help="also serve the self-care portal on this port over the sink's backend (chdb allows one "
                        "process per data path); 0 = off (env CDRFLOW_SINK_PORTAL_PORT; bind: CDRFLOW_PORTAL_HOST)")
    p.add_argument("--sql-port", type=int, default=st.sink_sql_port,
                   help="ClickHouse HTTP interface over a chdb store, for analysts and the CLI while the sink "
                        "holds it; 0 = any free port, -1 = off (env CDRFLOW_SINK_SQL_PORT)")
    p.add_argument("--sql-host", default=st.sink_sql_host,
                   help="address of the SQL interface (env CDRFLOW_SINK_SQL_HOST)")
    p.add_argument("--group", default=GROUP)
    p.add_argument("--topics", default=",".join(TOPICS))
    p.add_argument("--batch-rows", type=int, default=20_000)
    p.add_argument("--batch-seconds", type=float, default=0.5)
    p.add_argument("--session-timeout-ms", type=int, default=10_000)
    p.add_argument("--log-level", default=st.log_level)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    # force: `cdrflow sink` has configured the root logger already (WARNING), which made a plain
    # basicConfig here a no-op and lost every INFO line of the sink.
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s",
                        force=True)
    from confluent_kafka import Consumer

    backend = open_backend(args.clickhouse)
    log.info("event=sink_start backend=%r bootstrap=%s", backend, args.bootstrap)
    # Tables first, then the analyst views over them, so `make run` leaves a queryable database.
    from sinks.clickhouse import analyst
    analyst.migrate(backend)
    from streams.settings import get_settings
    consumer = Consumer({
        # SASL/TLS settings pass through from CDRFLOW_KAFKA_* like every other client.
        **get_settings().kafka_client_config(),
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        # Offsets move only after ClickHouse has the rows (see Sink.flush).
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        # tansu answers a fetch only when the wait expires; 500 ms (the default) adds to landing lag.
        "fetch.wait.max.ms": 100,
        "session.timeout.ms": args.session_timeout_ms,
    })
    sink = Sink(consumer, backend, max_rows=args.batch_rows, max_age_s=args.batch_seconds)
    server = serve_status(sink, args.status_port, args.status_host) if args.status_port else None
    if server:
        log.info("event=status_listening host=%s port=%d", *server.server_address[:2])
    sql = None
    if backend.kind == "chdb" and args.sql_port >= 0:
        # chdb admits one process per data path: analysts and the CLI query through this one.
        from sinks import sql_http
        st = get_settings()
        sql = sql_http.start_for_sink(
            backend, args.sql_host, args.sql_port,
            st.sql_http_password.get_secret_value() if st.sql_http_password else None,
            st.analyst_user, st.analyst_password.get_secret_value() if st.analyst_password else None)
    portal = None
    if args.portal_port:
        from streams.portal.embedded import start_for_sink
        portal = start_for_sink(backend, args.bootstrap, get_settings().portal_host, args.portal_port)

    def _stop(signum, _frame):
        log.info("event=signal signum=%d", signum)
        sink.stopping.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    rc = 1
    try:
        rc = sink.run([t for t in args.topics.split(",") if t])
    finally:
        if server:
            server.shutdown()
        if portal:
            portal.stop()
        if sql:
            sql.stop()
        consumer.close()
        backend.close()
        log.info("event=sink_stop rc=%d", rc)
    return rc
