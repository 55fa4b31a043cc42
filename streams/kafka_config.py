"""One Kafka connection, built from settings, for every client cdrflow creates.

``CDRFLOW_KAFKA_*`` settings describe the connection once; :func:`connection` checks that they
make sense together, and the two mappings give the same connection to librdkafka
(confluent-kafka producers, consumers and the admin client) and to Faust (aiokafka: an SSL
context and SASL credentials). Before this module, Faust got SASL credentials without an SSL
context, so a TLS-only cluster could not be reached by the worker at all.
"""
from __future__ import annotations

import ssl
from dataclasses import dataclass

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


class KafkaConfigError(ValueError):
    """The CDRFLOW_KAFKA_* settings do not describe a usable connection."""


@dataclass(frozen=True)
class KafkaConnection:
    bootstrap: str
    protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None      # never logged: __repr__ below hides it
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None       # client certificate (mutual TLS)
    ssl_keyfile: str | None = None
    ssl_key_password: str | None = None

    def __repr__(self) -> str:
        return (f"KafkaConnection(bootstrap={self.bootstrap!r}, protocol={self.protocol}, "
                f"sasl_mechanism={self.sasl_mechanism}, sasl_username={self.sasl_username}, "
                f"ssl_cafile={self.ssl_cafile}, ssl_certfile={self.ssl_certfile})")

    @property
    def uses_ssl(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def uses_sasl(self) -> bool:
        return self.protocol in ("SASL_PLAINTEXT", "SASL_SSL")


def _secret(v) -> str | None:
    if v is None:
        return None
    return v.get_secret_value() if hasattr(v, "get_secret_value") else str(v)


def connection(settings) -> KafkaConnection:
    """The connection the settings describe; :class:`KafkaConfigError` names what is wrong."""
    proto = (settings.kafka_security_protocol or "").upper().replace("-", "_")
    mech = (settings.kafka_sasl_mechanism or "").upper() or None
    if not proto:
        # SASL settings without a protocol meant SASL over plaintext in librdkafka's eyes too.
        proto = "SASL_PLAINTEXT" if mech else "PLAINTEXT"
    if proto not in PROTOCOLS:
        raise KafkaConfigError(f"CDRFLOW_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol!r} "
                               f"is not one of {', '.join(PROTOCOLS)}")
    conn = KafkaConnection(
        bootstrap=settings.kafka_bootstrap, protocol=proto, sasl_mechanism=mech,
        sasl_username=settings.kafka_sasl_username, sasl_password=_secret(settings.kafka_sasl_password),
        ssl_cafile=settings.kafka_ssl_cafile, ssl_certfile=getattr(settings, "kafka_ssl_certfile", None),
        ssl_keyfile=getattr(settings, "kafka_ssl_keyfile", None),
        ssl_key_password=_secret(getattr(settings, "kafka_ssl_key_password", None)))
    if conn.uses_sasl:
        if mech not in MECHANISMS:
            raise KafkaConfigError(f"CDRFLOW_KAFKA_SASL_MECHANISM={settings.kafka_sasl_mechanism!r} "
                                   f"is not one of {', '.join(MECHANISMS)} (needed by {proto})")
        if not conn.sasl_username or conn.sasl_password is None:
            raise KafkaConfigError(f"{proto} needs CDRFLOW_KAFKA_SASL_USERNAME and CDRFLOW_KAFKA_SASL_PASSWORD")
    elif mech:
        raise KafkaConfigError(f"CDRFLOW_KAFKA_SASL_MECHANISM is set but the protocol is {proto}; "
                               "use SASL_SSL or SASL_PLAINTEXT")
    if not conn.uses_ssl and (conn.ssl_cafile or conn.ssl_certfile or conn.ssl_keyfile):
        raise KafkaConfigError(f"CDRFLOW_KAFKA_SSL_* files are set but the protocol is {proto}; use SSL or SASL_SSL")
    if bool(conn.ssl_certfile) != bool(conn.ssl_keyfile):
        raise KafkaConfigError("CDRFLOW_KAFKA_SSL_CERTFILE and CDRFLOW_KAFKA_SSL_KEYFILE go together (mutual TLS)")
    return conn


def librdkafka(conn: KafkaConnection) -> dict:
    """confluent-kafka client settings (producer, consumer, admin)."""
    conf: dict = {"bootstrap.servers": conn.bootstrap}
    if conn.protocol != "PLAINTEXT":
        conf["security.protocol"] = conn.protocol
    if conn.uses_sasl:
        conf["sasl.mechanism"] = conn.sasl_mechanism
        conf["sasl.username"] = conn.sasl_username
        conf["sasl.password"] = conn.sasl_password
    if conn.uses_ssl:
        if conn.ssl_cafile:
            conf["ssl.ca.location"] = conn.ssl_cafile
        if conn.ssl_certfile:
            conf["ssl.certificate.location"] = conn.ssl_certfile
            conf["ssl.key.location"] = conn.ssl_keyfile
        if conn.ssl_key_password:
            conf["ssl.key.password"] = conn.ssl_key_password
    return conf


def ssl_context(conn: KafkaConnection) -> ssl.SSLContext | None:
    """The context aiokafka uses: verifies the broker (system CAs, or the CA file) and its
    host name, like librdkafka's default ``ssl.endpoint.identification.algorithm=https``."""
    if not conn.uses_ssl:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=conn.ssl_cafile)
    if conn.ssl_certfile:
        ctx.load_cert_chain(conn.ssl_certfile, conn.ssl_keyfile, conn.ssl_key_password)
    return ctx


def faust_credentials(conn: KafkaConnection):
    """``broker_credentials`` for ``faust.App``: None, SSL or SASL (with the SSL context)."""
    import faust

    if conn.uses_sasl:
        return faust.SASLCredentials(username=conn.sasl_username, password=conn.sasl_password,
                                     mechanism=conn.sasl_mechanism, ssl_context=ssl_context(conn))
    if conn.uses_ssl:
        return faust.SSLCredentials(ssl_context(conn))
    return None


def librdkafka_config(settings) -> dict:
    return librdkafka(connection(settings))
