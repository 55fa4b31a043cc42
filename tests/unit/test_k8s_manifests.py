"""deploy/k8s validated offline: built-in resources against Kubernetes' own schemas
(kubernetes-validate, strict), Strimzi KafkaTopics against the CRD's schema (fixture cited in
the file), and topics.yaml equal to what `cdrflow topics strimzi` generates from
streams/topics.py with the ConfigMap's partition and replication settings (no drift)."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

from streams import topics
from streams.cli.topics_cmds import strimzi_topics
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KUBE_VERSION = "1.37.0"
TOPIC_SCHEMA = json.loads((ROOT / "tests/fixtures/strimzi/kafkatopic-v1beta2.schema.json").read_text())
SINK_ENV = {"CDRFLOW_SINK_STATUS_PORT", "CDRFLOW_SINK_STATUS_HOST"}


def _docs(name: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]


def _configmap() -> dict:
    return next(d for d in _docs("cdrflow.yaml") if d["kind"] == "ConfigMap")["data"]


def test_builtin_resources_pass_strict_kubernetes_validation():
    kinds = []
    for doc in _docs("cdrflow.yaml"):
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)     # raises with the path on error
        kinds.append(doc["kind"])
    assert sorted(kinds) == ["ConfigMap", "Deployment", "Deployment", "Job", "PodDisruptionBudget", "Service"]


def test_workers_have_probes_resources_metrics_port_and_a_disruption_budget():
    docs = _docs("cdrflow.yaml")
    worker = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "cdrflow-worker")
    c = worker["spec"]["template"]["spec"]["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/cdrflow/assignment" and c["livenessProbe"]
    assert c["resources"]["requests"] and c["resources"]["limits"]["memory"]
    assert worker["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "6066"
    assert {e["name"]: e.get("value") for e in c["env"]}["CDRFLOW_WEB_HOST"] == "0.0.0.0"
    pdb = next(d for d in docs if d["kind"] == "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == worker["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["maxUnavailable"] == 1


def test_kafka_topics_are_generated_from_streams_topics_and_match_the_crd_schema():
    cm = _configmap()
    plans = topics.plan(int(cm["CDRFLOW_PARTITIONS"]), int(cm["CDRFLOW_RAW_PARTITIONS"]),
                        int(cm["CDRFLOW_TOPIC_REPLICATION_FACTOR"]), int(cm["CDRFLOW_TOPIC_MIN_INSYNC_REPLICAS"]))
    assert (K8S / "topics.yaml").read_text() == strimzi_topics(plans, "cdrflow"), \
        "regenerate: cdrflow topics strimzi > deploy/k8s/topics.yaml (with the ConfigMap's settings)"
    docs = _docs("topics.yaml")
    for doc in docs:
        jsonschema.validate(doc, TOPIC_SCHEMA)
    by_name = {d["spec"]["topicName"]: d["spec"] for d in docs}
    assert by_name[topics.NORMALIZED]["partitions"] == 24 and by_name[topics.RAW]["partitions"] == 12
    assert by_name[topics.STATE]["config"]["cleanup.policy"] == "compact"
    assert {s["replicas"] for s in by_name.values()} == {3}


def test_kafka_cluster_resources_have_the_replication_the_topics_need():
    docs = {d["kind"]: d for d in _docs("kafka.yaml")}
    assert docs["KafkaNodePool"]["spec"]["replicas"] == 3
    assert set(docs["KafkaNodePool"]["spec"]["roles"]) == {"controller", "broker"}
    cfg = docs["Kafka"]["spec"]["kafka"]["config"]
    assert (cfg["default.replication.factor"], cfg["min.insync.replicas"]) == (3, 2)
    assert cfg["auto.create.topics.enable"] is False


def test_manifests_set_only_variables_cdrflow_reads():
    known = {f"CDRFLOW_{n.upper()}" for n in Settings.model_fields} | SINK_ENV
    names = set(_configmap())
    for doc in _docs("cdrflow.yaml"):
        pod = doc.get("spec", {}).get("template", {}).get("spec", {})
        for c in pod.get("containers", []):
            names |= {e["name"] for e in c.get("env", [])}
    assert names - known == set()
