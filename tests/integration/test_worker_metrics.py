"""The worker serves Prometheus metrics: cdrflow's counters (records in, rejected by stage and
reason, ...) and Faust's sensor, on its web server (127.0.0.1 unless CDRFLOW_WEB_HOST)."""
from __future__ import annotations

import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from streams.local.stack import LocalStack
from streams.publisher import Publisher
from streams.simulator import CdrGenerator, make_accounts

pytestmark = pytest.mark.integration
NOW = int(time.time() * 1000)
CDRS, GARBAGE = 20, 3
WAIT_S = 120


def _scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def _sum(samples: dict, name: str, **labels) -> float:
    return sum(v for (n, lab), v in samples.items()
               if n == name and all(dict(lab).get(k) == x for k, x in labels.items()))


def test_worker_metrics_count_inputs_and_rejects_by_reason(tmp_path):
    stack = LocalStack(tmp_path, workers=1).start(sink=False)
    try:
        stack.wait_workers_ready(WAIT_S)
        port = stack.worker_ports["worker-1"]
        pub = Publisher(stack.client_conf)
        # Accounts are never provisioned: every well-formed CDR ends as a reject too.
        pub.cdrs(CdrGenerator(make_accounts(5), NOW, seed=3).take(CDRS), "single")
        pub.raw([b"not avro"] * GARBAGE)
        pub.close()
        deadline = time.monotonic() + WAIT_S
        samples = _scrape(port)
        def done(samples) -> bool:       # every input counted, and its offsets committed (1 s interval)
            return (_sum(samples, "cdrflow_rejected_total") >= CDRS + GARBAGE
                    and _sum(samples, "cdrflow_topic_partition_offset_commited", topic="cdr.raw") >= CDRS + GARBAGE)

        while not done(samples) and time.monotonic() < deadline:
            stack.check_alive()
            time.sleep(0.5)
            samples = _scrape(port)
    finally:
        stack.stop()
    ours = {k: v for k, v in samples.items() if k[0].startswith(("cdrflow_records", "cdrflow_rejected"))}
    assert _sum(samples, "cdrflow_rejected_total") == CDRS + GARBAGE, ours
    assert _sum(samples, "cdrflow_rejected_total", stage="normalize", reason="bad_magic") == GARBAGE
    assert _sum(samples, "cdrflow_records_total", outcome="records_in") == CDRS + GARBAGE
    assert _sum(samples, "cdrflow_records_total", outcome="rated") == 0
    # Faust's sensor, same page: messages received from cdr.raw, committed offsets per partition.
    assert _sum(samples, "cdrflow_messages_received_per_topic_total", topic="cdr.raw") >= CDRS + GARBAGE
    # The two sides of the lag rule in deploy/prometheus/alerts.yml: all of cdr.raw committed.
    assert _sum(samples, "cdrflow_topic_partition_offset_commited", topic="cdr.raw") == CDRS + GARBAGE
    # (tansu's high watermark can be low, see streams/tansu_compat.py: only its presence is checked)
    assert _sum(samples, "cdrflow_topic_partition_end_offset", topic="cdr.raw") > 0
