"""With CDRFLOW_SCHEMA_REGISTRY_URL set, every output is written (and read) with registry ids:
one serializer per process, built from settings, behind streams.codecs.encode/decode, which
the publisher, both agents, the controllers and the sink use. confluent-kafka's in-memory
``mock://`` registry client stands in for a Schema Registry."""
from __future__ import annotations

import json
import uuid
import warnings

import pytest

from streams import codecs, registry
from streams.settings import get_settings
from streams.simulator import make_accounts

NOW = 1_795_000_000_000


@pytest.fixture()
def registry_url(monkeypatch):
    warnings.simplefilter("ignore")          # the registry client warns about its optional extras
    url = f"mock://cdrflow-{uuid.uuid4().hex}"
    monkeypatch.setenv("CDRFLOW_SCHEMA_REGISTRY_URL", url)
    get_settings.cache_clear()
    codecs.reset_wire()
    wire = registry.wire_from_settings()
    # Other subjects registered first, so registry ids cannot coincide with the pinned ids.
    from confluent_kafka.schema_registry import Schema
    for i in range(40):
        wire.client.register_schema(f"other.Subject{i}", Schema(json.dumps(
            {"type": "record", "name": f"Other{i}", "fields": [{"name": "x", "type": "int"}]}), "AVRO"))
    yield url
    monkeypatch.delenv("CDRFLOW_SCHEMA_REGISTRY_URL")
    get_settings.cache_clear()
    codecs.reset_wire()


def _id(data: bytes) -> int:
    magic, sid = codecs.HEADER.unpack_from(data, 0)
    assert magic == 0
    return sid


def test_outputs_carry_the_registrys_ids_and_decode_back(registry_url):
    wire = registry.wire_from_settings()
    assert wire.kind == "registry" and codecs.registry_wire() is wire     # one object per process
    cmd = make_accounts(1)[0].provision_command(NOW)
    data = codecs.encode(codecs.CONTROL, cmd)                              # publisher / controllers
    registered = wire.client.get_latest_version(codecs.CONTROL).schema_id
    assert _id(data) == registered
    assert _id(data) != codecs.book().schema_id(codecs.CONTROL)            # not the pinned id
    name, back = codecs.decode(data)                                       # sink / controllers
    assert name == codecs.CONTROL and back["account"] == cmd["account"]

    from sinks.landing import Sink
    class NoBackend:          # the sink's decoder is all this checks
        def version(self):
            return (24, 8)
    assert Sink(None, NoBackend()).decode(data)[1]["account"] == cmd["account"]


def test_without_a_registry_pinned_ids_stay(monkeypatch):
    monkeypatch.delenv("CDRFLOW_SCHEMA_REGISTRY_URL", raising=False)
    get_settings.cache_clear()
    codecs.reset_wire()
    cmd = make_accounts(1)[0].provision_command(NOW)
    # schemas/registry.json: the id pinned for ControlCommand's current version
    import schemas
    assert _id(codecs.encode(codecs.CONTROL, cmd)) == schemas.pinned_ids()[codecs.CONTROL]
    assert schemas.pinned_versions()[_id(codecs.encode(codecs.CONTROL, cmd))]["name"] == codecs.CONTROL
