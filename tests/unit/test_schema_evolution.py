"""Every schema stays BACKWARD_TRANSITIVE compatible with its prior versions (schemas/history),
and the checker itself catches the changes that break old writers."""
from __future__ import annotations

import copy
import io
import json

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer

import schemas
from streams import registry
from streams.registry import check_backward_transitive, compatibility_errors, inline_schema, resolution_errors


@pytest.mark.parametrize("name", schemas.all_names())
def test_current_schemas_read_every_prior_version(name):
    assert check_backward_transitive(name) == []


def test_history_names_real_schemas():
    hist = registry.history()
    assert hist, "schemas/history holds the prior versions"
    assert set(hist) <= set(schemas.all_names())


def test_every_schema_has_a_pinned_id_and_ids_are_unique():
    # Write ids: the id pinned for each current schema (tests/unit/test_wire_schema_ids.py has
    # the full rules: one id per exact version, never reused).
    ids = schemas.pinned_ids()
    assert set(ids) == set(schemas.all_names())
    assert len(set(ids.values())) == len(ids)
    versions = schemas.pinned_versions()
    assert versions[1]["name"] == "cdr.v1.SwitchCdr" and versions[14]["name"] == "cdr.v1.SwitchBatch"


def _with(name, mutate):
    new = copy.deepcopy(inline_schema(name))
    mutate(new)
    return new


def test_added_field_with_default_is_compatible_and_decodes():
    old = inline_schema("cdr.v1.SwitchCdr")
    new = _with("cdr.v1.SwitchCdr", lambda s: s["fields"].append({"name": "stage", "type": "string", "default": "A"}))
    assert compatibility_errors(new, old) == [] and resolution_errors(new, old) == []
    # Newer writer, older reader (what a not-yet-upgraded worker sees) also resolves.
    rec = {"switch_id": "s", "call_id": "c", "account": "a", "direction": "outbound", "caller": "1", "called": "2",
           "start_ms": 0, "end_ms": 1, "duration_s": 0, "billsec_s": 0, "disposition": "FAILED", "stage": "ivr"}
    full = {f["name"]: f.get("default") for f in new["fields"]} | rec
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(new), full)
    buf.seek(0)
    got = schemaless_reader(buf, parse_schema(new), parse_schema(old))
    assert got["call_id"] == "c" and "stage" not in got


@pytest.mark.parametrize("mutate,needle", [
    (lambda s: s["fields"].append({"name": "stage", "type": "string"}), "added without a default"),
    (lambda s: next(f for f in s["fields"] if f["name"] == "start_ms").update(type="int"), "narrowed"),
    (lambda s: next(f for f in s["fields"] if f["name"] == "duration_s").update(type="string"), "narrowed"),
    (lambda s: next(f for f in s["fields"] if f["name"] == "trunk").update(type="string"), "null cannot be read"),
])
def test_breaking_changes_are_caught(mutate, needle):
    old = inline_schema("cdr.v1.SwitchCdr")
    new = _with("cdr.v1.SwitchCdr", mutate)
    errs = compatibility_errors(new, old)
    assert errs and any(needle in e for e in errs), errs


def test_widening_is_allowed():
    old = inline_schema("cdr.v1.SwitchCdr")
    new = _with("cdr.v1.SwitchCdr", lambda s: next(f for f in s["fields"] if f["name"] == "duration_s").update(type="long"))
    assert compatibility_errors(new, old) == [] and resolution_errors(new, old) == []


def test_batch_schema_inlines_its_members():
    s = inline_schema("cdr.v1.SwitchBatch")
    items = s["fields"][0]["type"]["items"]
    assert [i["name"] for i in items] == ["SwitchCdr", "AsteriskCdr", "FreeswitchCdr", "KamailioCdr", "Ts32298VoiceRecord"]
    parse_schema(json.loads(json.dumps(s)))  # stands alone, as a registry needs
