"""The Faust application: one app module; agents, tables and topics live in their own modules.

Run a worker with ``cdrflow worker`` (or ``faust -A streams.app worker``).
"""
from __future__ import annotations

import faust

from streams import faust_compat, kafka_config, metrics, supervise, tansu_compat, topics
from streams.settings import get_settings

settings = get_settings()
# Faust creates only the last level of its data directory; a fresh checkout has no var/ yet.
(settings.data_dir / "faust").mkdir(parents=True, exist_ok=True)


# One connection for every client: TLS context and SASL credentials (streams/kafka_config.py).
kafka = kafka_config.connection(settings)

# supervise.App: an agent that crashes ends the worker (non-zero exit, logged) instead of idling.
app = supervise.App(
    "cdrflow",
    broker=f"kafka://{settings.kafka_bootstrap}",
    broker_credentials=kafka_config.faust_credentials(kafka),
    # Faust writes its data directory (table state, leader assignor) relative to the working
    # directory by default; the image's /app is read-only, so it lives under CDRFLOW_DATA_DIR.
    datadir=str(settings.data_dir / "faust"),
    # The local broker rejects aiokafka's InitProducerId, and Faust's exactly_once has open
    # duplicate bugs; replays are made harmless by keys and offsets instead (DESIGN.md #2).
    processing_guarantee="at_least_once",
    store="memory://",
    topic_partitions=settings.partitions,
    topic_replication_factor=settings.topic_replication_factor,
    key_serializer="raw",
    value_serializer="raw",
    consumer_auto_offset_reset="earliest",
    # Group joins on tansu take about half the session timeout.
    broker_session_timeout=10.0,
    broker_rebalance_timeout=10.0,
    broker_heartbeat_interval=1.0,
    broker_commit_interval=1.0,
    broker_max_poll_records=500,
    stream_buffer_maxsize=8192,
    table_standby_replicas=0,
    web_host=settings.web_host,
    web_port=settings.web_port,
    web_in_thread=False,
    producer_linger_ms=5,
    producer_max_request_size=settings.producer_max_request_bytes,
    consumer_max_fetch_size=16 * 1024 * 1024,
)

if settings.broker_is_tansu:
    tansu_compat.install(kafka_config.librdkafka(kafka))
# On every broker: a seek back to committed offsets must really go back (see faust_compat).
faust_compat.install({spec.name for spec in topics.SPECS if not spec.compacted})

# /metrics: Faust's sensor and cdrflow's counters (streams/metrics.py).
metrics.install_worker_metrics(app)

# Import for registration side effects (agents, tables, pages).
from streams.agents import authorize as _authorize  # noqa: E402,F401
from streams.agents import accounts_page as _accounts_page  # noqa: E402,F401
from streams.agents import charge as _charge  # noqa: E402,F401
from streams.agents import normalize as _normalize  # noqa: E402,F401
