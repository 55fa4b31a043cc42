"""Wire formats: Confluent framing (magic 0 + 4-byte schema id + schemaless Avro) and Avro
object containers (batches of CDRs in one message, as switches write CDR files).

Without a Schema Registry, ids come from ``schemas/registry.json`` (pinned). With one,
``RegistrySchemaBook`` resolves ids through ``confluent_kafka.schema_registry``.
Decoding checks everything a hostile or broken producer can get wrong and raises
``RejectError`` with the matching reason code; it never lets an exception of another kind out.
"""
from __future__ import annotations

import io
import struct
from typing import Any, Iterable

import fastavro
from fastavro import parse_schema, schemaless_reader, schemaless_writer

import schemas
from streams.core.reasons import Reason, RejectError

MAGIC = 0
HEADER = struct.Struct(">bI")
OCF_MAGIC = b"Obj\x01"

# Names used across the code base, so a typo is an AttributeError rather than a silent miss.
SWITCH_CDR = "cdr.v1.SwitchCdr"
CANONICAL = "cdr.v1.CanonicalCdr"
CANONICAL_BATCH = "cdr.v1.CanonicalBatch"
RATED = "cdr.v1.RatedCdr"
RATED_BATCH = "cdr.v1.RatedBatch"
REJECTED = "cdr.v1.RejectedCdr"
BARRING = "account.v1.BarringEvent"
STATE = "account.v1.AccountState"
CONTROL = "account.v1.ControlCommand"
NOTIFICATION = "account.v1.Notification"

# Batch types and the record type they carry.
BATCH_OF = {CANONICAL_BATCH: CANONICAL, RATED_BATCH: RATED}


class SchemaBook:
    """Parsed schemas by full name and by wire id (pinned local ids)."""

    def __init__(self) -> None:
        self.named: dict[str, Any] = {}
        self.parsed: dict[str, Any] = {}
        # Parse referenced record types before the batches that use them.
        order = sorted(schemas.all_names(), key=lambda n: n.endswith("Batch"))
        for name in order:
            self.parsed[name] = parse_schema(schemas.load_raw(name), named_schemas=self.named)
        self.id_of: dict[str, int] = dict(schemas.pinned_ids())
        self.name_of: dict[int, str] = {i: n for n, i in self.id_of.items()}
        self.by_id: dict[int, Any] = {i: self.parsed[n] for n, i in self.id_of.items()}

    def schema_id(self, name: str) -> int:
        return self.id_of[name]

    def writer(self, schema_id: int):
        return self.by_id.get(schema_id)


_BOOK: SchemaBook | None = None


def book() -> SchemaBook:
    global _BOOK
    if _BOOK is None:
        _BOOK = SchemaBook()
    return _BOOK


def encode(name: str, record: dict, sb: SchemaBook | None = None) -> bytes:
    sb = sb or book()
    buf = io.BytesIO()
    buf.write(HEADER.pack(MAGIC, sb.schema_id(name)))
    schemaless_writer(buf, sb.parsed[name], record)
    return buf.getvalue()


def encode_batch(batch_name: str, records: list[dict], sb: SchemaBook | None = None) -> bytes:
    return encode(batch_name, {"records": records}, sb)


def encode_container(name: str, records: Iterable[dict], codec: str = "null",
                     sb: SchemaBook | None = None) -> bytes:
    """An Avro object container file in memory: how a switch ships a CDR file."""
    sb = sb or book()
    buf = io.BytesIO()
    fastavro.writer(buf, sb.parsed[name], records, codec=codec)
    return buf.getvalue()


def decode(data: bytes, sb: SchemaBook | None = None, max_items: int = 100_000) -> tuple[str, dict]:
    """Decode one Confluent-framed record. Raises RejectError with the reason code."""
    sb = sb or book()
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) < HEADER.size:
        raise RejectError(Reason.BAD_MAGIC, f"message of {len(data or b'')} bytes is too short for a wire header")
    magic, schema_id = HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise RejectError(Reason.BAD_MAGIC, f"first byte is {data[0]:#04x}, expected 0x00")
    schema = sb.writer(schema_id)
    if schema is None:
        raise RejectError(Reason.UNKNOWN_SCHEMA, f"schema id {schema_id} is not registered")
    name = sb.name_of[schema_id]
    buf = io.BytesIO(data)
    buf.seek(HEADER.size)
    record = _read(buf, schema, name, len(data), max_items)
    if buf.tell() != len(data):
        raise RejectError(Reason.TRAILING_BYTES, f"{len(data) - buf.tell()} bytes after the {name} record")
    return name, record


def _read(buf: io.BytesIO, schema: Any, name: str, size: int, max_items: int) -> dict:
    try:
        record = schemaless_reader(buf, schema, None)
    except (EOFError, StopIteration) as exc:
        raise RejectError(Reason.UNDECODABLE, f"{name} body ends early: {exc or 'truncated'}") from None
    except MemoryError:
        raise RejectError(Reason.ARRAY_BOMB, f"{name} claims an impossible number of items") from None
    except Exception as exc:  # fastavro raises many types on garbage; all mean the same thing here
        raise RejectError(Reason.UNDECODABLE, f"{name} body does not decode: {type(exc).__name__}: {exc}") from None
    if name in BATCH_OF and len(record.get("records", ())) > max_items:
        raise RejectError(Reason.ARRAY_BOMB, f"{name} holds {len(record['records'])} records, limit {max_items}")
    return record


def is_container(data: bytes) -> bool:
    return data[:4] == OCF_MAGIC


def decode_container(data: bytes, max_items: int = 100_000) -> tuple[str, list[dict]]:
    """Decode an Avro object container. The writer schema travels in its header."""
    try:
        reader = fastavro.reader(io.BytesIO(data))
        schema = reader.writer_schema
        name = schema.get("name", "") if isinstance(schema, dict) else ""
        if isinstance(schema, dict) and schema.get("namespace") and "." not in name:
            name = f"{schema['namespace']}.{name}"
        out: list[dict] = []
        for rec in reader:
            out.append(rec)
            if len(out) > max_items:
                raise RejectError(Reason.ARRAY_BOMB, f"container holds more than {max_items} records")
        return name, out
    except RejectError:
        raise
    except MemoryError:
        raise RejectError(Reason.ARRAY_BOMB, "container block claims an impossible number of records") from None
    except Exception as exc:
        raise RejectError(Reason.UNDECODABLE, f"Avro container does not decode: {type(exc).__name__}: {exc}") from None
