"""Configuration from environment variables (prefix ``CDRFLOW_``) and an optional ``.env`` file.

Secrets are ``SecretStr`` so they never reach logs or ``repr``; ``safe_dict()`` is what we log.
"""
from __future__ import annotations

from functools import lru_cache
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
    schema_registry_url: str | None = None

    # Partition counts. Account-keyed topics must all share one count (co-partitioning).
    partitions: int = 8
    raw_partitions: int = 4

    # ClickHouse target: a chdb directory, chdb://PATH, or clickhouse://user:pass@host:9000/db.
    clickhouse: str = Field(default="var/chdb", repr=False)   # may hold a password: masked in safe_dict

    tariff_file: Path = DATA_DIR / "tariff_default.yaml"
    sources_file: Path | None = None      # YAML: numbering context per switch / trunk
    data_dir: Path = Path("var")

    # Processing.
    batch_max: int = 2000                 # events per take_events batch
    batch_within_s: float = 0.05
    max_message_bytes: int = 8 * 1024 * 1024
    max_batch_records: int = 50_000       # more than this in one message is an array bomb
    dedup_horizon_days: int = 35
    period_check_s: float = 60.0          # how often idle accounts are checked for a new period
    broker_is_tansu: bool = True          # enables the high-watermark correction (see tansu_compat)

    web_host: str = "127.0.0.1"
    web_port: int = 6066
    log_level: str = "INFO"
    worker_id: str = Field(default="w1")

    def kafka_client_config(self) -> dict:
        """librdkafka (confluent-kafka) settings including security pass-through."""
        conf: dict = {"bootstrap.servers": self.kafka_bootstrap}
        if self.kafka_security_protocol:
            conf["security.protocol"] = self.kafka_security_protocol
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            conf["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password:
            conf["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_cafile:
            conf["ssl.ca.location"] = self.kafka_ssl_cafile
        return conf

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
