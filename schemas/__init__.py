"""Avro schemas of cdrflow: one ``<namespace>.<Name>.avsc`` file per named type.

``registry.json`` pins the schema id of each type for the local wire format (used when no
Schema Registry URL is configured). Ids are never reused or renumbered.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

SCHEMA_DIR = Path(__file__).resolve().parent


def schema_path(full_name: str) -> Path:
    return SCHEMA_DIR / f"{full_name}.avsc"


def load_raw(full_name: str) -> dict:
    """The schema as written in its file (unparsed JSON)."""
    with open(schema_path(full_name)) as fh:
        return json.load(fh)


@lru_cache(maxsize=1)
def pinned_ids() -> dict[str, int]:
    with open(SCHEMA_DIR / "registry.json") as fh:
        return dict(json.load(fh)["ids"])


def all_names() -> list[str]:
    return sorted(p.name[: -len(".avsc")] for p in SCHEMA_DIR.glob("*.avsc"))
