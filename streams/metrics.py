"""Process-local counters, exported to Prometheus and to the worker's /cdrflow/stats page.

The worker serves them at ``/metrics`` on its web server (``CDRFLOW_WEB_HOST``:``CDRFLOW_WEB_PORT``,
127.0.0.1 unless configured) together with Faust's own sensor (messages in/out, commits,
rebalances, per-partition end and committed offsets: the consumer lag). Names are what
deploy/prometheus/alerts.yml and deploy/grafana/cdrflow.json query.
"""
from __future__ import annotations

from collections import Counter
from typing import Iterable

from prometheus_client import REGISTRY
from prometheus_client import Counter as PCounter

COUNTS: Counter[str] = Counter()

# outcome: records_in, normalized, rated, duplicates, barring_events, notifications, commands,
# rejected_normalize, rejected_charge, charge_batch_errors, input_skips, ...
RECORDS = PCounter("cdrflow_records_total", "Records by pipeline outcome", ["outcome"])
REJECTS = PCounter("cdrflow_rejected_total", "Rejected CDRs by stage and reason code (streams/core/reasons.py)",
                   ["stage", "reason"])


def count(outcome: str, n: int = 1) -> None:
    if n:
        COUNTS[outcome] += n
        RECORDS.labels(outcome).inc(n)


def count_rejects(stage: str, rejects: Iterable[dict]) -> None:
    for rej in rejects:
        REJECTS.labels(stage, rej.get("reason", "unknown")).inc()


class PlainCounts:
    """A Prometheus collector over plain integer counts, read only when scraped.

    Faust's Prometheus sensor bumps a labelled ``prometheus_client`` counter on every table read
    and write and on every send: a ``labels()`` look-up and a locked increment, about 2 µs each.
    The charge agent makes several table operations per CDR, and py-spy put the sensor at 6-7 %
    of the worker's CPU (docs/notes/2026-11-30/perf2.md). Counting into a dict is ~0.1 µs; the
    same series (name, labels, values) come out at scrape time."""

    def __init__(self, name: str, doc: str, labels: tuple[str, ...]):
        self.name, self.doc, self.labels = name, doc, list(labels)
        self.counts: Counter[tuple[str, ...]] = Counter()

    def collect(self):
        from prometheus_client.core import CounterMetricFamily

        fam = CounterMetricFamily(self.name, self.doc, labels=self.labels)
        for key, n in sorted(self.counts.items()):
            fam.add_metric(list(key), n)
        yield fam


def light_monitor_class():
    """Faust's PrometheusMonitor with the per-operation table and per-send topic counters kept
    as ``PlainCounts``; everything else (lag, commits, rebalances, latencies) is Faust's own."""
    from faust.sensors.monitor import Monitor
    from faust.sensors.prometheus import PrometheusMonitor

    class LightPrometheusMonitor(PrometheusMonitor):
        def __init__(self, metrics, table_ops: PlainCounts, sent: PlainCounts, **kwargs):
            super().__init__(metrics=metrics, **kwargs)
            self._table_ops = table_ops.counts
            self._sent = sent.counts

        def on_table_get(self, table, key) -> None:
            self._table_ops[(f"table.{table.name}", self.KEYS_RETRIEVED)] += 1

        def on_table_set(self, table, key, value) -> None:
            self._table_ops[(f"table.{table.name}", self.KEYS_UPDATED)] += 1

        def on_table_del(self, table, key) -> None:
            self._table_ops[(f"table.{table.name}", self.KEYS_DELETED)] += 1

        def on_send_initiated(self, producer, topic, message, keysize, valsize):
            self._sent[(f"topic.{topic}",)] += 1
            return Monitor.on_send_initiated(self, producer, topic, message, keysize, valsize)

    return LightPrometheusMonitor


def install_worker_metrics(app, registry=REGISTRY, prefix: str = "cdrflow") -> None:
    """Faust's Prometheus sensor and page (``/metrics``), sharing the registry of the counters
    above, with metric names prefixed ``cdrflow_``; the hottest of its counters are swapped for
    ``PlainCounts`` under the same names."""
    from faust.sensors.prometheus import setup_prometheus_sensors

    setup_prometheus_sensors(app, pattern="/metrics", registry=registry, name_prefix=prefix)
    metrics = app.monitor._metrics
    table_ops = PlainCounts(f"{prefix}_table_operations", "Total table operations", ("table", "operation"))
    sent = PlainCounts(f"{prefix}_topic_messages_sent", "Total messages sent per topic", ("topic",))
    registry.unregister(metrics.table_operations)
    registry.unregister(metrics.topic_messages_sent)
    registry.register(table_ops)
    registry.register(sent)
    app.monitor = light_monitor_class()(metrics, table_ops, sent)
