"""Process-local counters, exported to Prometheus and to the worker's /cdrflow/stats page."""
from __future__ import annotations

from collections import Counter

from prometheus_client import Counter as PCounter

COUNTS: Counter[str] = Counter()

RECORDS = PCounter("cdrflow_records_total", "Records by pipeline outcome", ["outcome"])


def count(outcome: str, n: int = 1) -> None:
    if n:
        COUNTS[outcome] += n
        RECORDS.labels(outcome).inc(n)
