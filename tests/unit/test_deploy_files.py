"""deploy/: the compose file as docker-compose reads it, Prometheus config and alert rules as
promtool reads them (with the rules' own unit tests), and a Grafana dashboard that only queries
metrics cdrflow really exports."""
from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from streams.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# Variables read outside the settings tree (sinks/landing.py's own options).
SINK_ENV = {"CDRFLOW_SINK_STATUS_PORT", "CDRFLOW_SINK_STATUS_HOST", "CDRFLOW_SINK_PORTAL_PORT"}


def _compose() -> dict:
    r = subprocess.run(["docker-compose", "-f", str(DEPLOY / "docker-compose.yml"), "config"], capture_output=True,
                       text=True, timeout=60, env={**os.environ, "CLICKHOUSE_PASSWORD": "not-a-secret"})
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


def test_compose_runs_three_kraft_brokers_with_replication_3_and_min_isr_2():
    services = _compose()["services"]
    brokers = sorted(n for n in services if n.startswith("kafka-"))
    assert brokers == ["kafka-1", "kafka-2", "kafka-3"]
    voters = {services[b]["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] for b in brokers}
    assert voters == {"1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093"}
    for b in brokers:
        env = services[b]["environment"]
        assert env["KAFKA_DEFAULT_REPLICATION_FACTOR"] == "3" and env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
        assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    # Topics are created by `cdrflow topics apply` with the same replication before any worker.
    topics_env = services["topics"]["environment"]
    assert services["topics"]["command"] == ["cdrflow", "topics", "apply"]
    assert (topics_env["CDRFLOW_TOPIC_REPLICATION_FACTOR"], topics_env["CDRFLOW_TOPIC_MIN_INSYNC_REPLICAS"]) == ("3", "2")
    assert services["worker"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    assert services["sink"]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
    # Prometheus in its own container must reach the sink's metrics.
    assert services["sink"]["environment"]["CDRFLOW_SINK_STATUS_HOST"] == "0.0.0.0"
    assert services["worker"]["environment"]["CDRFLOW_WEB_HOST"] == "0.0.0.0"


def test_compose_sets_only_variables_cdrflow_reads():
    known = {f"CDRFLOW_{name.upper()}" for name in Settings.model_fields} | SINK_ENV
    for name, svc in _compose()["services"].items():
        unknown = {k for k in (svc.get("environment") or {}) if k.startswith("CDRFLOW_")} - known
        assert not unknown, f"{name} sets {unknown}, which nothing reads"


def test_prometheus_config_and_alert_rules_pass_promtool_and_their_unit_tests():
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"],
                 ["test", "rules", "alerts_test.yml"]):
        r = subprocess.run(["promtool", *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr


def _exported() -> set[str]:
    from faust.sensors.prometheus import FaustMetrics

    from sinks.landing import Metrics
    from streams import metrics

    names = {"up"}
    faust_reg = CollectorRegistry()
    FaustMetrics.create(faust_reg, "cdrflow")            # what install_worker_metrics registers
    for reg in (faust_reg, Metrics().registry):
        fams = list(reg.collect())
        for fam in fams:
            names.add(fam.name)
            names |= {fam.name + s for s in {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
                      .get(fam.type, [])}
    names |= {metrics.RECORDS._name + "_total", metrics.REJECTS._name + "_total"}
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    names |= {r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r}
    return names


def test_dashboard_and_alerts_query_only_exported_metrics():
    exported = _exported()
    dash = json.loads((DEPLOY / "grafana" / "cdrflow.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs += [r["expr"] for g in rules["groups"] for r in g["rules"]]
    exprs = [re.sub(r'"[^"]*"', '""', e) for e in exprs]          # label values are not metric names
    used = {m for e in exprs for m in re.findall(r"\b(cdrflow[a-z_:]*|up)\b(?=\s*[\[{)]|\s*$|\s*[-/>=]|\s+and\b)", e)}
    assert "cdrflow_rejected_total" in used and "cdrflow:worker_lag:sum_by_topic" in used
    assert used <= exported, used - exported
