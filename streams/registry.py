"""Wire format with or without a Schema Registry, and schema compatibility checks.

Both wire formats are Confluent framing: magic byte 0, a 4-byte big-endian schema id, then
the schemaless Avro body. Only where the id comes from differs:

* :class:`LocalWire` - the pinned ids of ``schemas/registry.json``; no network, the default.
  An id names one exact schema version forever; decoding resolves the pinned writer schema
  of the id against our current reader schema, as with a registry (:func:`pin` adds ids).
* :class:`RegistryWire` - ids registered in / looked up from a Confluent Schema Registry
  through ``confluent_kafka.schema_registry`` (``CDRFLOW_SCHEMA_REGISTRY_URL``; ``mock://``
  gives the in-memory client for tests). Subjects follow the RecordNameStrategy (subject =
  full record name) because ``cdr.raw`` carries several record types. Decoding resolves the
  *writer* schema fetched by id against our *reader* schema (fastavro schema resolution), so
  a producer on a newer schema version with added, defaulted fields still decodes.

The two id spaces overlap, so one deployment uses one of them: :func:`wire_from_settings`.

:func:`compatibility_errors` is the BACKWARD check used by tests/unit/test_schema_evolution.py
against the prior versions kept in ``schemas/history/``.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.utils import generate_many

import schemas
from streams import codecs
from streams.core.reasons import Reason, RejectError

HISTORY_DIR = schemas.SCHEMA_DIR / "history"


# The inlining lives with the schema files (schemas.inline_schema); kept here under its old name.
inline_schema = schemas.inline_schema
_PRIMITIVES = schemas._PRIMITIVES


class LocalWire:
    """Pinned local ids (schemas/registry.json)."""

    kind = "local"

    def __init__(self, sb: codecs.SchemaBook | None = None):
        self.sb = sb or codecs.book()

    def encode(self, name: str, record: dict) -> bytes:
        return codecs.encode(name, record, self.sb)

    def decode(self, data: bytes, max_items: int = 100_000) -> tuple[str, dict]:
        return codecs.decode(data, self.sb, max_items)


class RegistryWire:
    """Ids from a Confluent Schema Registry; writer->reader schema resolution on decode."""

    kind = "registry"

    def __init__(self, client):
        from confluent_kafka.schema_registry import Schema  # optional dependency (authlib)

        self._Schema = Schema
        self.client = client
        self._ids: dict[str, int] = {}
        self._parsed: dict[str, Any] = {}
        self._by_id: dict[int, tuple[str, Any, Any]] = {}

    @classmethod
    def from_url(cls, url: str, conf: dict | None = None) -> "RegistryWire":
        from confluent_kafka.schema_registry import SchemaRegistryClient

        return cls(SchemaRegistryClient.new_client({"url": url, **(conf or {})}))

    def _reader(self, name: str):
        p = self._parsed.get(name)
        if p is None:
            p = self._parsed[name] = parse_schema(inline_schema(name), _write_hint=False)
        return p

    def schema_id(self, name: str) -> int:
        sid = self._ids.get(name)
        if sid is None:
            schema = self._Schema(json.dumps(inline_schema(name)), "AVRO")
            # register_schema returns the existing id when the subject already holds it.
            sid = self._ids[name] = int(self.client.register_schema(name, schema))
        return sid

    def encode(self, name: str, record: dict) -> bytes:
        buf = io.BytesIO()
        buf.write(codecs.HEADER.pack(codecs.MAGIC, self.schema_id(name)))
        schemaless_writer(buf, self._reader(name), record)
        return buf.getvalue()

    def _resolve(self, schema_id: int) -> tuple[str, Any, Any]:
        hit = self._by_id.get(schema_id)
        if hit is not None:
            return hit
        try:
            writer_raw = json.loads(self.client.get_schema(schema_id).schema_str)
        except Exception as exc:  # the client raises SchemaRegistryError (404) or transport errors
            raise RejectError(Reason.UNKNOWN_SCHEMA, f"schema id {schema_id}: {type(exc).__name__}: {exc}") from None
        ns = writer_raw.get("namespace", "")
        name = writer_raw.get("name", "")
        full = name if "." in name else f"{ns}.{name}"
        if not schemas.schema_path(full).exists():
            raise RejectError(Reason.UNSUPPORTED_FORMAT, f"schema id {schema_id} is {full}, which cdrflow does not read")
        hit = (full, parse_schema(writer_raw, _write_hint=False), self._reader(full))
        self._by_id[schema_id] = hit
        return hit

    def decode(self, data: bytes, max_items: int = 100_000) -> tuple[str, dict]:
        if not isinstance(data, (bytes, bytearray)) or len(data) < codecs.HEADER.size:
            raise RejectError(Reason.BAD_MAGIC, "message is too short for a wire header")
        magic, schema_id = codecs.HEADER.unpack_from(data, 0)
        if magic != codecs.MAGIC:
            raise RejectError(Reason.BAD_MAGIC, f"first byte is {data[0]:#04x}, expected 0x00")
        name, writer, reader = self._resolve(schema_id)
        buf = io.BytesIO(data)
        buf.seek(codecs.HEADER.size)
        try:
            rec = schemaless_reader(buf, writer, reader)
        except (EOFError, StopIteration):
            raise RejectError(Reason.UNDECODABLE, f"{name} body ends early") from None
        except MemoryError:
            raise RejectError(Reason.ARRAY_BOMB, f"{name} claims an impossible number of items") from None
        except Exception as exc:
            raise RejectError(Reason.UNDECODABLE, f"{name} does not decode or resolve: {type(exc).__name__}: {exc}") from None
        if buf.tell() != len(data):
            raise RejectError(Reason.TRAILING_BYTES, f"{len(data) - buf.tell()} bytes after the {name} record")
        if isinstance(rec.get("records"), list) and len(rec["records"]) > max_items:
            raise RejectError(Reason.ARRAY_BOMB, f"{name} holds {len(rec['records'])} records, limit {max_items}")
        return name, rec


_WIRES: dict[str, RegistryWire] = {}


def wire_from_settings(settings=None):
    """RegistryWire when ``CDRFLOW_SCHEMA_REGISTRY_URL`` is set, else LocalWire.

    One RegistryWire per URL per process: the normaliser's input side and every output
    (``streams.codecs.encode``/``decode``) share its id cache and its client."""
    if settings is None:
        from streams.settings import get_settings

        settings = get_settings()
    url = getattr(settings, "schema_registry_url", None)
    if not url:
        return LocalWire()
    wire = _WIRES.get(url)
    if wire is None:
        wire = _WIRES[url] = RegistryWire.from_url(url)
    return wire


# --- compatibility -------------------------------------------------------------------------

# Avro's promotions: a reader of the key type can read a writer of each listed type.
_PROMOTE = {"long": {"int"}, "float": {"int", "long"}, "double": {"int", "long", "float"},
            "string": {"bytes"}, "bytes": {"string"}}


def _tname(t: Any) -> str:
    if isinstance(t, dict):
        k = t.get("type")
        return k if k in ("record", "enum", "fixed", "array", "map", "error") else _tname(k)
    if isinstance(t, list):
        return "union"
    return t.rsplit(".", 1)[-1] if isinstance(t, str) and t not in _PRIMITIVES else t


def _type_errors(reader: Any, writer: Any, path: str) -> list[str]:
    if isinstance(writer, list):
        # Every branch the writer may use must be readable.
        errs = []
        for w in writer:
            if isinstance(reader, list):
                if not any(not _type_errors(r, w, path) for r in reader):
                    errs.append(f"{path}: writer branch {_tname(w)} has no matching reader branch")
            else:
                errs += _type_errors(reader, w, path)
        return errs
    if isinstance(reader, list):
        if any(not _type_errors(r, writer, path) for r in reader):
            return []
        return [f"{path}: reader union has no branch for writer {_tname(writer)}"]
    rn, wn = _tname(reader), _tname(writer)
    if rn != wn:
        if wn in _PROMOTE.get(rn, ()):
            return []
        return [f"{path}: type {wn} cannot be read as {rn} (narrowed or changed)"]
    if rn in ("record", "error"):
        return compatibility_errors(reader, writer, path)
    if rn == "enum":
        missing = set(writer["symbols"]) - set(reader["symbols"])
        if missing and "default" not in reader:
            return [f"{path}: enum symbols {sorted(missing)} removed without a default"]
    if rn == "array":
        return _type_errors(reader["items"], writer["items"], path + "[]")
    if rn == "map":
        return _type_errors(reader["values"], writer["values"], path + "{}")
    if rn == "fixed" and reader.get("size") != writer.get("size"):
        return [f"{path}: fixed size changed"]
    return []


def compatibility_errors(new: dict, old: dict, path: str = "") -> list[str]:
    """Structural BACKWARD rules for records, reader = ``new``, writer = ``old``: an added
    field needs a default, a kept field may only widen (Avro promotions), union branches
    the old writer used must stay readable. Inlined schemas expected (:func:`inline_schema`)."""
    path = path or new.get("name", "")
    errs: list[str] = []
    old_fields = {f["name"]: f for f in old.get("fields", [])}
    for f in new.get("fields", []):
        names = [f["name"], *f.get("aliases", [])]
        w = next((old_fields[n] for n in names if n in old_fields), None)
        if w is None:
            if "default" not in f:
                errs.append(f"{path}.{f['name']}: added without a default")
            continue
        errs += _type_errors(f["type"], w["type"], f"{path}.{f['name']}")
    return errs


def resolution_errors(new: dict, old: dict, samples: int = 25) -> list[str]:
    """Write generated records with ``old``, read them with ``new``: fastavro's own schema
    resolution must accept every one."""
    writer, reader = parse_schema(old, _write_hint=False), parse_schema(new, _write_hint=False)
    errs = []
    for rec in generate_many(writer, samples):
        buf = io.BytesIO()
        schemaless_writer(buf, writer, rec)
        buf.seek(0)
        try:
            schemaless_reader(buf, writer, reader)
        except Exception as exc:
            errs.append(f"{new.get('name')}: {type(exc).__name__}: {exc}")
            break
    return errs


def history() -> dict[str, list[tuple[int, Path]]]:
    """Prior versions: schemas/history/<full name>.<version>.avsc, oldest first."""
    out: dict[str, list[tuple[int, Path]]] = {}
    for p in HISTORY_DIR.glob("*.avsc"):
        stem = p.name[: -len(".avsc")]
        name, _, ver = stem.rpartition(".")
        if ver.isdigit():
            out.setdefault(name, []).append((int(ver), p))
    return {k: sorted(v) for k, v in out.items()}


def check_backward_transitive(name: str, current: dict | None = None) -> list[str]:
    """Every prior version of ``name`` must be readable by the current schema: the history
    files and every schema an id was ever pinned to (what may still sit on a topic)."""
    current = current or inline_schema(name)
    errs = []
    for ver, p in history().get(name, []):
        old = inline_schema(name, lookup=lambda n, _p=p: json.loads(_p.read_text()) if n == name else schemas.load_raw(n))
        errs += [f"v{ver}: {e}" for e in compatibility_errors(current, old) + resolution_errors(current, old)]
    for sid, v in sorted(schemas.pinned_versions().items()):
        if v["name"] == name:
            old = schemas.load_pinned(sid)
            errs += [f"id {sid}: {e}" for e in compatibility_errors(current, old) + resolution_errors(current, old)]
    return errs


# --- pinning local ids ---------------------------------------------------------------------

def pin() -> list[tuple[int, str]]:
    """Give every type whose current (inlined) schema has no id yet a new one - the next free
    number, never a reused one - and write its exact schema to schemas/history/wire/.
    Returns the (id, name) pairs added. Ids already given out are never touched."""
    schemas.clear_caches()
    missing = schemas.unpinned()
    if not missing:
        return []
    reg = schemas.read_registry()
    versions = reg["versions"]
    next_id = max((int(k) for k in versions), default=0) + 1
    added = []
    for name, fp in sorted(missing.items()):
        sid, next_id = next_id, next_id + 1
        schemas.WIRE_DIR.mkdir(parents=True, exist_ok=True)
        schemas.wire_file(sid, name).write_text(json.dumps(inline_schema(name), indent=2) + "\n")
        versions[str(sid)] = {"name": name, "fingerprint": fp}
        added.append((sid, name))
    schemas.REGISTRY_FILE.write_text(json.dumps(reg, indent=2) + "\n")
    schemas.clear_caches()
    return added


def main(argv: list[str] | None = None) -> int:
    import sys

    args = sys.argv[1:] if argv is None else argv
    if args != ["pin"]:
        print("usage: python -m streams.registry pin   (gives every changed schema a new local wire id)", file=sys.stderr)
        return 2
    added = pin()
    for sid, name in added:
        print(f"pinned id {sid}: {name} -> {schemas.wire_file(sid, name).relative_to(schemas.SCHEMA_DIR.parent)}")
    if not added:
        print("every current schema already has its id")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
