"""The one Kafka connection setting over TLS, end to end: confluent-kafka (admin, producer,
consumer) and Faust's aiokafka clients, given the same CDRFLOW_KAFKA_* settings, reach a real
tansu broker through TLS verified against the CA (see tests/support/tls.py for why a proxy)."""
from __future__ import annotations

import asyncio
import time

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

from streams import topic_admin, topics
from streams.kafka_config import connection, faust_credentials, librdkafka
from streams.local.broker import tansu_binary
from streams.local.procs import free_port, spawn, wait_port
from streams.settings import Settings
from tests.support.tls import TlsProxy, make_pki

pytestmark = pytest.mark.integration
TIMEOUT_S = 30


@pytest.fixture()
def tls_broker(tmp_path):
    pki = make_pki(tmp_path / "pki")
    plain, tls = free_port(), free_port()
    # Clients learn broker addresses from metadata: tansu advertises the TLS address.
    child = spawn("tansu", [tansu_binary(), "broker", "--listener-url", f"tcp://127.0.0.1:{plain}",
                            "--advertised-listener-url", f"tcp://localhost:{tls}",
                            "--storage-engine", "memory://tansu/"], tmp_path / "logs")
    proxy = None
    try:
        wait_port(plain, 30, child)
        proxy = TlsProxy(pki, tls, plain).start()
        yield f"localhost:{tls}", pki, proxy
    finally:
        if proxy:
            proxy.stop()
        child.stop()


def test_every_client_reaches_a_tls_only_broker_with_the_same_settings(tls_broker):
    bootstrap, pki, proxy = tls_broker
    conn = connection(Settings(_env_file=None, kafka_bootstrap=bootstrap, kafka_security_protocol="SSL",
                               kafka_ssl_cafile=str(pki.ca)))
    conf = librdkafka(conn)

    # Plaintext against the TLS listener fails: the listener really is TLS-only.
    with pytest.raises(Exception):
        AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=3)

    report = topic_admin.apply(conf, topics.plan(2, 2))                   # admin client
    assert report.ok and topics.RAW in report.created, report

    p = Producer(conf)                                                    # librdkafka producer
    p.produce(topics.RAW, value=b"via-librdkafka", partition=0)
    assert p.flush(TIMEOUT_S) == 0

    auth = credentials_to_aiokafka_auth(faust_credentials(conn))          # what Faust hands aiokafka
    assert auth["security_protocol"] == "SSL"

    async def faust_clients() -> list[bytes]:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        prod = AIOKafkaProducer(bootstrap_servers=bootstrap, **auth)
        await prod.start()
        try:
            await asyncio.wait_for(prod.send_and_wait(topics.RAW, b"via-aiokafka", partition=0), TIMEOUT_S)
        finally:
            await prod.stop()
        cons = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, **auth)
        await cons.start()
        try:
            tp = TopicPartition(topics.RAW, 0)
            cons.assign([tp])
            await cons.seek_to_beginning(tp)
            got: list[bytes] = []
            deadline = time.monotonic() + TIMEOUT_S
            while len(got) < 2 and time.monotonic() < deadline:
                batch = await cons.getmany(tp, timeout_ms=500)
                got += [m.value for m in batch.get(tp, [])]
            return got
        finally:
            await cons.stop()

    assert asyncio.run(faust_clients()) == [b"via-librdkafka", b"via-aiokafka"]

    c = Consumer({**conf, "group.id": "tls-test", "auto.offset.reset": "earliest"})   # librdkafka consumer
    try:
        c.subscribe([topics.RAW])
        got = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(got) < 2 and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and not m.error():
                got.append(m.value())
        assert got == [b"via-librdkafka", b"via-aiokafka"]
    finally:
        c.close()
    assert proxy.handshakes >= 4
