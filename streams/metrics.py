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


def install_worker_metrics(app) -> None:
    """Faust's Prometheus sensor and page (``/metrics``), sharing the registry of the counters
    above, with metric names prefixed ``cdrflow_``."""
    from faust.sensors.prometheus import setup_prometheus_sensors

    setup_prometheus_sensors(app, pattern="/metrics", registry=REGISTRY, name_prefix="cdrflow")
