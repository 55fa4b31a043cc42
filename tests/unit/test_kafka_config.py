"""One Kafka connection setting, mapped identically to librdkafka and to Faust (aiokafka)."""
from __future__ import annotations

import ssl

import pytest
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from streams.kafka_config import KafkaConfigError, connection, faust_credentials, librdkafka
from streams.settings import Settings
from tests.support.tls import make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def _settings(**kw) -> Settings:
    return Settings(_env_file=None, kafka_bootstrap="k1:9093,k2:9093", **kw)


def test_plaintext_is_the_default_and_gives_faust_no_credentials():
    conn = connection(_settings())
    assert librdkafka(conn) == {"bootstrap.servers": "k1:9093,k2:9093"}
    assert faust_credentials(conn) is None
    assert credentials_to_aiokafka_auth(faust_credentials(conn)) == {"security_protocol": "PLAINTEXT"}


def test_ssl_only_cluster_gets_a_verifying_ssl_context_in_faust(pki):
    conn = connection(_settings(kafka_security_protocol="ssl", kafka_ssl_cafile=str(pki.ca)))
    assert librdkafka(conn) == {"bootstrap.servers": "k1:9093,k2:9093", "security.protocol": "SSL",
                                "ssl.ca.location": str(pki.ca)}
    auth = credentials_to_aiokafka_auth(faust_credentials(conn))
    assert auth["security_protocol"] == "SSL"
    ctx = auth["ssl_context"]
    assert isinstance(ctx, ssl.SSLContext)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    assert any(c["subject"] == ((("commonName", "cdrflow test CA"),),) for c in ctx.get_ca_certs())


def test_sasl_ssl_gives_both_clients_the_same_credentials_and_tls(pki):
    conn = connection(_settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="scram-sha-512",
                                kafka_sasl_username="cdrflow", kafka_sasl_password="hunter2",
                                kafka_ssl_cafile=str(pki.ca)))
    assert librdkafka(conn) == {
        "bootstrap.servers": "k1:9093,k2:9093", "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "cdrflow", "sasl.password": "hunter2",
        "ssl.ca.location": str(pki.ca)}
    auth = credentials_to_aiokafka_auth(faust_credentials(conn))
    assert auth["security_protocol"] == "SASL_SSL"
    assert auth["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (auth["sasl_plain_username"], auth["sasl_plain_password"]) == ("cdrflow", "hunter2")
    assert isinstance(auth["ssl_context"], ssl.SSLContext)
    assert "hunter2" not in repr(conn) and "hunter2" not in repr(faust_credentials(conn))


def test_sasl_plaintext_has_no_ssl_context():
    conn = connection(_settings(kafka_sasl_mechanism="PLAIN", kafka_sasl_username="u", kafka_sasl_password="p"))
    assert conn.protocol == "SASL_PLAINTEXT"          # SASL settings alone mean SASL over plaintext
    auth = credentials_to_aiokafka_auth(faust_credentials(conn))
    assert auth["security_protocol"] == "SASL_PLAINTEXT" and auth["ssl_context"] is None
    assert librdkafka(conn)["security.protocol"] == "SASL_PLAINTEXT"


def test_mutual_tls_client_certificate_reaches_both_clients(pki):
    # The server pair stands in for a client pair: only the mapping is under test here.
    conn = connection(_settings(kafka_security_protocol="SSL", kafka_ssl_cafile=str(pki.ca),
                                kafka_ssl_certfile=str(pki.cert), kafka_ssl_keyfile=str(pki.key)))
    conf = librdkafka(conn)
    assert (conf["ssl.certificate.location"], conf["ssl.key.location"]) == (str(pki.cert), str(pki.key))
    assert isinstance(credentials_to_aiokafka_auth(faust_credentials(conn))["ssl_context"], ssl.SSLContext)


@pytest.mark.parametrize("kw, message", [
    ({"kafka_security_protocol": "TLS"}, "is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL"),
    ({"kafka_security_protocol": "SSL", "kafka_sasl_mechanism": "PLAIN"}, "use SASL_SSL or SASL_PLAINTEXT"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "PLAIN"}, "needs CDRFLOW_KAFKA_SASL_USERNAME"),
    ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_mechanism": "GSSAPI", "kafka_sasl_username": "u",
      "kafka_sasl_password": "p"}, "is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512"),
    ({"kafka_ssl_cafile": "/ca.pem"}, "use SSL or SASL_SSL"),
    ({"kafka_security_protocol": "SSL", "kafka_ssl_certfile": "/c.pem"}, "go together"),
])
def test_contradictory_settings_are_refused_with_their_names(kw, message):
    with pytest.raises(KafkaConfigError, match=message.replace("(", r"\(")):
        connection(_settings(**kw))
