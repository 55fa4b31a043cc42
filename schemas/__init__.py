"""Avro schemas of cdrflow: one ``<namespace>.<Name>.avsc`` file per named type.

``registry.json`` pins the schema ids of the local wire format (used when no Schema Registry
URL is configured). An id names ONE exact schema version forever: the fully-inlined schema
(every referenced named type written out) kept in ``history/wire/<id>.<name>.avsc``, with
its fingerprint in ``registry.json``. A message on a topic outlives the process that wrote
it, so a reader must find the schema the writer used, not the one it has now. When a type
(or any type it contains) changes, its new version gets a NEW id - never reuse or renumber:
``python -m streams.registry pin`` adds them, tests/unit/test_wire_schema_ids.py insists.
"""
from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

SCHEMA_DIR = Path(__file__).resolve().parent
WIRE_DIR = SCHEMA_DIR / "history" / "wire"
REGISTRY_FILE = SCHEMA_DIR / "registry.json"

_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def schema_path(full_name: str) -> Path:
    return SCHEMA_DIR / f"{full_name}.avsc"


def load_raw(full_name: str) -> dict:
    """The schema as written in its file (unparsed JSON)."""
    with open(schema_path(full_name)) as fh:
        return json.load(fh)


def all_names() -> list[str]:
    return sorted(p.name[: -len(".avsc")] for p in SCHEMA_DIR.glob("*.avsc"))


def inline_schema(name: str, lookup: Callable[[str], dict] = load_raw) -> dict:
    """The schema of ``name`` with every referenced named type written out in place (first
    use only, as Avro requires), so it stands alone in a registry without references."""
    seen: set[str] = set()

    def expand(t: Any, ns: str) -> Any:
        if isinstance(t, str):
            full = t if "." in t else (f"{ns}.{t}" if ns else t)
            if full in seen or t in _PRIMITIVES:
                return t
            try:
                raw = lookup(full)
            except FileNotFoundError:
                return t
            return expand(raw, ns)
        if isinstance(t, list):
            return [expand(b, ns) for b in t]
        if isinstance(t, dict):
            kind = t.get("type")
            if kind in ("record", "error", "enum", "fixed"):
                rns = t.get("namespace", ns)
                full = t["name"] if "." in t["name"] else f"{rns}.{t['name']}"
                seen.add(full)
                if kind in ("record", "error"):
                    return {**t, "fields": [{**f, "type": expand(f["type"], rns)} for f in t["fields"]]}
                return t
            if kind == "array":
                return {**t, "items": expand(t["items"], ns)}
            if kind == "map":
                return {**t, "values": expand(t["values"], ns)}
            return {**t, "type": expand(kind, ns)} if isinstance(kind, (dict, list)) else t
        return t

    return expand(lookup(name), "")


def fingerprint(inlined: dict) -> str:
    """SHA-256 of the inlined schema as sorted JSON, documentation left out: a doc edit does
    not change what is on the wire, anything else (fields, types, defaults, logical types)
    may, so it needs its own id."""

    def strip(t: Any) -> Any:
        if isinstance(t, dict):
            return {k: strip(v) for k, v in t.items() if k != "doc"}
        if isinstance(t, list):
            return [strip(v) for v in t]
        return t

    text = json.dumps(strip(inlined), sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def wire_file(schema_id: int, name: str) -> Path:
    return WIRE_DIR / f"{schema_id}.{name}.avsc"


def read_registry() -> dict:
    with open(REGISTRY_FILE) as fh:
        return json.load(fh)


@lru_cache(maxsize=1)
def pinned_versions() -> dict[int, dict]:
    """Every id ever given out: id -> {"name", "fingerprint"}."""
    return {int(k): dict(v) for k, v in read_registry()["versions"].items()}


def load_pinned(schema_id: int) -> dict:
    """The exact (inlined) schema that id ``schema_id`` names."""
    v = pinned_versions()[schema_id]
    with open(wire_file(schema_id, v["name"])) as fh:
        return json.load(fh)


@lru_cache(maxsize=1)
def current_fingerprints() -> dict[str, str]:
    return {n: fingerprint(inline_schema(n)) for n in all_names()}


@lru_cache(maxsize=1)
def pinned_ids() -> dict[str, int]:
    """The id each type is WRITTEN with: the one pinned for its current schema. A type whose
    current schema has no id yet is left out (writing it fails, naming the fix)."""
    by_fp = {(v["name"], v["fingerprint"]): i for i, v in pinned_versions().items()}
    out = {}
    for name, fp in current_fingerprints().items():
        sid = by_fp.get((name, fp))
        if sid is not None:
            out[name] = sid
    return out


def unpinned() -> dict[str, str]:
    """Types whose current schema has no id: name -> fingerprint."""
    ids = pinned_ids()
    return {n: fp for n, fp in current_fingerprints().items() if n not in ids}


def clear_caches() -> None:
    pinned_versions.cache_clear()
    current_fingerprints.cache_clear()
    pinned_ids.cache_clear()
