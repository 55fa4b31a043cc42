"""Configuration from environment variables (prefix ``CDRFLOW_``) and an optional ``.env`` file.

Secrets are ``SecretStr`` so they never reach logs or ``repr``; ``safe_dict()`` is what we log.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Literal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DATA_DIR = Path(__file__).resolve().parent / "data"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CDRFLOW_", env_file=".env", extra="ignore")

    # Kafka. Empty bootstrap means "start the embedded tansu broker" for the local commands.
    kafka_bootstrap: str = "127.0.0.1:9092"
    kafka_security_protocol: str | None = None      # SASL_SSL, SSL, SASL_PLAINTEXT
    kafka_sasl_mechanism: str | None = None         # PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None         # client certificate for mutual TLS (with _KEYFILE)
    kafka_ssl_keyfile: str | None = None
    kafka_ssl_key_password: SecretStr | None = None
    schema_registry_url: str | None = None

    # Partition counts. Account-keyed topics must all share one count (co-partitioning).
    partitions: int = 8
    raw_partitions: int = 4
    # Topic creation (`cdrflow topics apply`): 3 and 2 on a production cluster.
    topic_replication_factor: int = 1
    topic_min_insync_replicas: int | None = None

    # ClickHouse target: a chdb directory, chdb://PATH, or clickhouse://user:pass@host:9000/db.
    clickhouse: str = Field(default="var/chdb", repr=False)   # may hold a password: masked in safe_dict

    tariff_file: Path = DATA_DIR / "tariff_default.yaml"
    sources_file: Path | None = None      # YAML: numbering context per switch / trunk
    webhooks_file: Path | None = None     # YAML: partner webhook endpoints (streams/notifications.py)
    data_dir: Path = Path("var")

    # Processing.
    batch_max: int = 2000                 # events per take_events batch
    batch_within_s: float = 0.05
    max_message_bytes: int = 8 * 1024 * 1024
    max_batch_records: int = 50_000       # more than this in one message is an array bomb
    max_decoded_bytes: int = 32 * 1024 * 1024   # a container inflating past this is rejected (oversize)
    max_field_chars: int = 512            # a longer string field is rejected (oversize_field)
    # Largest request a producer may send; outputs are split to fit (tansu and our Kafka config
    # accept 16 MiB; a stock Kafka broker's message.max.bytes is 1 MiB: lower this to match).
    producer_max_request_bytes: int = 16 * 1024 * 1024
    normalize_chunk_records: int = 2000   # CDRs normalised and sent before the agent yields
    dedup_horizon_days: int = 35
    period_check_s: float = 60.0          # how often idle accounts are checked for a new period
    broker_is_tansu: bool = True          # enables the high-watermark correction (see tansu_compat)
    # `cdrflow up`'s embedded broker: "memory" forgets everything on stop; "disk" keeps topics and
    # offsets in WORKDIR/broker (tansu s3:// through a local `rclone serve s3`). Memory is the
    # default because a fresh-clone run lost 50 of 200 records published after a disk restart
    # (tests/integration/test_durable_broker.py), a cause not found yet.
    broker_storage: Literal["disk", "memory"] = "memory"

    # Authorisation: seconds one /authorize or /call-update grants at most (the reservation).
    authorize_quota_s: int = Field(default=600, ge=1, le=4 * 3600)
    # The reservation write is awaited before the answer (durability); True pushes it to the
    # broker at once instead of after the producer's batching linger (most of the answer time).
    authorize_send_now: bool = True
    # The charge agent's account values, key-store nodes and state snapshots go out through
    # librdkafka, acknowledged before each offset commit, instead of Faust's producer
    # (streams/direct_send.py). False: through Faust, as before (for comparison).
    direct_send: bool = True

    web_host: str = "127.0.0.1"
    web_port: int = 6066

    # Corporate self-care portal (``cdrflow portal``; streams/portal/).
    portal_host: str = "127.0.0.1"
    portal_port: int = 8090
    portal_users_file: Path = Path("var/portal/users.json")
    portal_accounts_file: Path | None = None   # provisioning CSV/YAML (as `account load`): time zones, thresholds
    portal_session_idle_s: int = 900
    portal_session_max_s: int = 8 * 3600
    portal_cookie_secure: bool = False         # set true behind HTTPS
    portal_currency: str | None = None         # default: the tariff file's `currency`, else EUR
    portal_login_max_per_user: int = 5         # failed logins per user name in the window before lockout
    portal_login_max_per_address: int = 20     # failed logins per client address in the window before lockout
    portal_login_window_s: int = 900
    portal_login_lockout_s: int = 900          # refused (without a password check) this long after the last failure
    # The sink's /status and /metrics (0 = off) and the self-care portal it may serve over its own
    # backend (0 = off; chdb admits one process per data path). `cdrflow sink` options override.
    sink_status_port: int = 0
    sink_status_host: str = "127.0.0.1"
    sink_portal_port: int = 0
    # The sink's ClickHouse HTTP interface over its chdb store (sinks/sql_http.py): 0 = any free
    # port (announced in <chdb path>.sql-http.json), -1 = off.
    sink_sql_port: int = 0
    sink_sql_host: str = "127.0.0.1"
    sql_http_password: SecretStr | None = None    # the operator ("default") user's; random if unset
    analyst_user: str = "analyst"                 # read-only masked access (there and analyst-access)
    analyst_password: SecretStr | None = None
    log_level: str = "INFO"
    worker_id: str = Field(default="w1")

    def kafka_client_config(self) -> dict:
        """librdkafka (confluent-kafka) settings for the one Kafka connection (streams/kafka_config.py)."""
        from streams.kafka_config import librdkafka_config

        return librdkafka_config(self)

    def safe_dict(self) -> dict:
        d = self.model_dump()
        for k, v in list(d.items()):
            if isinstance(v, SecretStr) or "password" in k:
                d[k] = "***" if v else None
        d["clickhouse"] = redact_url(self.clickhouse)
        return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
