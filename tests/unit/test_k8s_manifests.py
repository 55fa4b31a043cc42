"""deploy/k8s validated offline: built-in resources against Kubernetes' own schemas
(kubernetes-validate, strict), Strimzi KafkaTopics against the CRD's schema (fixture cited in
the file), ClickHouse (StatefulSet; users file checked structurally), and topics.yaml equal to what `cdrflow topics strimzi` generates from
streams/topics.py with the ConfigMap's partition and replication settings (no drift)."""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import yaml

from sinks.clickhouse.analyst import analyst_db
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
            env = c.get("env", [])
            # A helper variable is allowed only as a $(NAME) piece of a cdrflow setting, declared
            # before it (Kubernetes expands only earlier entries).
            for i, e in enumerate(env):
                for ref in re.findall(r"\$\((\w+)\)", e.get("value", "")):
                    assert ref in {x["name"] for x in env[:i]}, (e["name"], ref)
                    known.add(ref)
            names |= {e["name"] for e in env}
    assert names - known == set()


def _container_env(doc: dict) -> dict[str, dict]:
    return {e["name"]: e for e in doc["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_clickhouse_resources_pass_strict_kubernetes_validation():
    kinds = []
    for doc in _docs("clickhouse.yaml"):
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
        kinds.append(doc["kind"])
    assert sorted(kinds) == ["ConfigMap", "Service", "StatefulSet"]


def test_clickhouse_users_operator_and_analyst_limited_to_masked_views_passwords_from_the_secret():
    docs = {d["kind"]: d for d in _docs("clickhouse.yaml")}
    server_env = _container_env(docs["StatefulSet"])
    users_file = docs["ConfigMap"]["data"]["cdrflow.xml"]
    mount = next(m for m in docs["StatefulSet"]["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
                 if m["name"] == "users")
    assert mount["mountPath"].startswith("/etc/clickhouse-server/users.d/")
    root = ET.fromstring(users_file)
    users = root.find("users")
    assert users.find("default").get("remove") == "1"       # no passwordless default user

    def secret_key_of(user: str) -> tuple[str, str]:
        pw = users.find(user).find("password")
        assert pw.text is None and pw.get("from_env"), f"{user}: password must come from the env"
        ref = server_env[pw.get("from_env")]["valueFrom"]["secretKeyRef"]
        return ref["name"], ref["key"]

    analyst = users.find("analyst")
    profile = root.find("profiles").find(analyst.findtext("profile"))
    assert profile.findtext("readonly") == "1"
    grants = [g.text.strip() for g in analyst.find("grants").findall("query")]

    # Every cdrflow container reaches this server as the operator user with the server's own key.
    service = docs["Service"]
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    for dep in (d for d in _docs("cdrflow.yaml") if d["kind"] == "Deployment"):
        env = _container_env(dep)
        url = urlsplit(env["CDRFLOW_CLICKHOUSE"]["value"])
        assert (url.scheme, url.hostname, url.port) == ("clickhouse", service["metadata"]["name"], ports["native"])
        assert url.username == "cdrflow" and users.find(url.username) is not None
        ref = re.fullmatch(r"\$\((\w+)\)", url.password).group(1)
        sk = env[ref]["valueFrom"]["secretKeyRef"]
        assert (sk["name"], sk["key"]) == secret_key_of("cdrflow")
        assert grants == [f"GRANT SELECT ON {analyst_db(url.path.lstrip('/'))}.*"]
    assert secret_key_of("analyst") != secret_key_of("cdrflow")
    # Migrations run as the operator: its views must read the raw tables with its rights.
    op_profile = root.find("profiles").find(users.find("cdrflow").findtext("profile"))
    assert op_profile.findtext("default_normal_view_sql_security") == "DEFINER"
