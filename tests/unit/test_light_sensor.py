"""The worker's Prometheus sensor counts table operations and sends in plain ints (cheap per
operation) and still exposes Faust's series, with the same names and labels, when scraped."""
from __future__ import annotations

import faust
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from streams.metrics import install_worker_metrics


def _samples(registry) -> dict:
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


class _Table:
    def __init__(self, name):
        self.name = name


def test_table_operations_and_sends_are_counted_and_scraped_under_faust_names():
    registry = CollectorRegistry()
    app = faust.App("cdrflow-sensor-test", broker="kafka://127.0.0.1:1")
    install_worker_metrics(app, registry=registry, prefix="t")
    mon = app.monitor
    accounts, keys = _Table("accounts"), _Table("cdrkeys")
    for _ in range(5):
        mon.on_table_get(accounts, b"a")
    for _ in range(3):
        mon.on_table_set(accounts, b"a", b"{}")
    mon.on_table_set(keys, b"k", b"x")
    mon.on_table_del(keys, b"k")
    state = [mon.on_send_initiated(None, "account.state", None, 1, 2) for _ in range(4)]
    mon.on_send_initiated(None, "cdr.rated", None, 1, 2)
    got = _samples(registry)

    def val(name, **labels):
        return got.get((name, tuple(sorted(labels.items()))))

    assert val("t_table_operations_total", table="table.accounts", operation="keys_retrieved") == 5
    assert val("t_table_operations_total", table="table.accounts", operation="keys_updated") == 3
    assert val("t_table_operations_total", table="table.cdrkeys", operation="keys_updated") == 1
    assert val("t_table_operations_total", table="table.cdrkeys", operation="keys_deleted") == 1
    assert val("t_topic_messages_sent_total", topic="topic.account.state") == 4
    assert val("t_topic_messages_sent_total", topic="topic.cdr.rated") == 1
    # Faust's own bookkeeping of sends still runs (the send-latency histogram needs its state).
    assert mon.messages_sent == 5 and all(isinstance(s, float) for s in state)
    # The rest of Faust's series are still there.
    assert any(n == "t_total_rebalances" for n, _ in got)
