"""The Faust application: one app module; agents, tables and topics live in their own modules.

Run a worker with ``cdrflow worker`` (or ``faust -A streams.app worker``).
"""
from __future__ import annotations

import faust

from streams import faust_compat, tansu_compat, topics
from streams.settings import get_settings

settings = get_settings()


def _broker_credentials():
    if not settings.kafka_sasl_mechanism:
        return None
    pw = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else ""
    return faust.SASLCredentials(username=settings.kafka_sasl_username or "", password=pw,
                                 mechanism=settings.kafka_sasl_mechanism)


app = faust.App(
    "cdrflow",
    broker=f"kafka://{settings.kafka_bootstrap}",
    broker_credentials=_broker_credentials(),
    # The local broker rejects aiokafka's InitProducerId, and Faust's exactly_once has open
    # duplicate bugs; replays are made harmless by keys and offsets instead (DESIGN.md #2).
    processing_guarantee="at_least_once",
    store="memory://",
    topic_partitions=settings.partitions,
    topic_replication_factor=1,
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
    producer_max_request_size=16 * 1024 * 1024,
    consumer_max_fetch_size=16 * 1024 * 1024,
)

if settings.broker_is_tansu:
    tansu_compat.install(settings.kafka_client_config())
# On every broker: a seek back to committed offsets must really go back (see faust_compat).
faust_compat.install({spec.name for spec in topics.SPECS if not spec.compacted})

# Import for registration side effects (agents, tables, pages).
from streams.agents import authorize as _authorize  # noqa: E402,F401
from streams.agents import charge as _charge  # noqa: E402,F401
from streams.agents import normalize as _normalize  # noqa: E402,F401
