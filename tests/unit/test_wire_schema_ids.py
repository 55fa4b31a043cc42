"""Local wire ids: an id names one exact schema version forever. Bytes written under a schema
version (by an older process, or already sitting on a topic) keep decoding after the schema
changes; a changed schema - or a type that contains it - cannot be written without a new id."""
from __future__ import annotations

import io
import json

import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.utils import generate_many

import schemas
from streams import codecs
from streams.core.reasons import RejectError
from streams.simulator import make_accounts

NOW = 1_795_000_000_000
HIST = schemas.SCHEMA_DIR / "history"

# The ids as landed at commit 8c662b8, and where each type's schema of that commit is kept
# (None: that type's file is unchanged since). Checked once against `git show 8c662b8:schemas/…`.
LANDED = {
    1: "cdr.v1.SwitchCdr", 2: "cdr.v1.CanonicalCdr", 3: "cdr.v1.CanonicalBatch", 4: "cdr.v1.RatedCdr",
    5: "cdr.v1.RatedBatch", 6: "cdr.v1.RejectedCdr", 7: "account.v1.BarringEvent", 8: "account.v1.AccountState",
    9: "account.v1.ControlCommand", 10: "cdr.v1.AsteriskCdr", 11: "cdr.v1.FreeswitchCdr", 12: "cdr.v1.KamailioCdr",
    13: "cdr.v1.Ts32298VoiceRecord", 14: "cdr.v1.SwitchBatch", 15: "account.v1.Notification",
}
LANDED_FILES = {
    "cdr.v1.RatedCdr": HIST / "cdr.v1.RatedCdr.1.avsc",
    "account.v1.AccountState": HIST / "account.v1.AccountState.1.avsc",
    "account.v1.ControlCommand": HIST / "account.v1.ControlCommand.3.avsc",
    "cdr.v1.FreeswitchCdr": HIST / "cdr.v1.FreeswitchCdr.1.avsc",
}


def _landed_lookup(name: str) -> dict:
    p = LANDED_FILES.get(name)
    return json.loads(p.read_text()) if p else schemas.load_raw(name)


def landed_schema(name: str) -> dict:
    """``name`` as landed at 8c662b8, with the member types of that commit inlined."""
    return schemas.inline_schema(name, lookup=_landed_lookup)


def _frame(schema_id: int, schema: dict, record: dict) -> bytes:
    buf = io.BytesIO()
    buf.write(codecs.HEADER.pack(codecs.MAGIC, schema_id))
    schemaless_writer(buf, parse_schema(schema, _write_hint=False), record)
    return buf.getvalue()


def _expect(reader: dict, writer: dict, rec):
    """What reading ``rec`` (written with ``writer``) as ``reader`` must give: kept fields as
    written, added fields at their defaults. Computed from the schema JSON, not the codec."""
    if isinstance(reader, dict) and reader.get("type") == "record" and isinstance(rec, dict):
        wf = {f["name"]: f for f in writer["fields"]}
        out = {}
        for f in reader["fields"]:
            if f["name"] in wf:
                out[f["name"]] = _expect(f["type"], wf[f["name"]]["type"], rec[f["name"]])
            else:
                out[f["name"]] = f["default"]
        return out
    if isinstance(reader, dict) and reader.get("type") == "array":
        return [_expect(reader["items"], writer["items"], r) for r in rec]
    if isinstance(reader, list) and isinstance(rec, dict):
        # the writer's record branch these fields came from, read as the reader's branch of that name
        for w in writer:
            if isinstance(w, dict) and w.get("type") == "record" and {f["name"] for f in w["fields"]} == set(rec):
                r = next(r for r in reader if isinstance(r, dict) and r.get("name") == w["name"])
                return _expect(r, w, rec)
    return rec


@pytest.mark.parametrize("schema_id,name", sorted(LANDED.items()))
def test_bytes_written_under_a_landed_id_decode_into_the_current_shape(schema_id, name):
    old = landed_schema(name)
    current = schemas.inline_schema(name)
    for rec in generate_many(parse_schema(old, _write_hint=False), 5):
        data = _frame(schema_id, old, rec)
        got_name, got = codecs.decode(data, codecs.book())
        assert got_name == name
        # Both sides as the writer wrote them, then the added fields at their defaults.
        buf = io.BytesIO(data[codecs.HEADER.size:])
        as_written = schemaless_reader(buf, parse_schema(old, _write_hint=False), None)
        assert got == _expect(current, old, as_written)


def test_an_old_workers_provisioning_command_is_applied_not_undecodable():
    # The measured failure: a not-yet-upgraded process sends ControlCommand under id 9.
    cmd = make_accounts(1)[0].provision_command(NOW)
    data = _frame(9, landed_schema("account.v1.ControlCommand"), cmd)
    name, got = codecs.decode(data, codecs.book())
    assert name == codecs.CONTROL and got["account"] == cmd["account"] and got["action"] == cmd["action"]
    added = {f["name"]: f["default"] for f in schemas.load_raw(codecs.CONTROL)["fields"]
             if f["name"] not in {g["name"] for g in landed_schema(codecs.CONTROL)["fields"]}}
    assert added, "ControlCommand gained fields after 8c662b8"
    assert {k: got[k] for k in added} == added


def test_an_old_rated_batch_on_the_topic_decodes_with_defaults():
    # RatedBatch's own file did not change, but the RatedCdr inside it did: id 5 still
    # names the 8c662b8 batch, and the new batch is written under a different id.
    old = landed_schema(codecs.RATED_BATCH)
    [rec] = generate_many(parse_schema(old, _write_hint=False), 1)
    rec["records"] = rec["records"] or list(generate_many(parse_schema(landed_schema(codecs.RATED), _write_hint=False), 2))
    name, got = codecs.decode(_frame(5, old, rec), codecs.book())
    assert name == codecs.RATED_BATCH and len(got["records"]) == len(rec["records"])
    cur_fields = [f["name"] for f in schemas.load_raw(codecs.RATED)["fields"]]
    assert all(list(r) == cur_fields for r in got["records"])
    assert codecs.book().schema_id(codecs.RATED_BATCH) != 5


@pytest.mark.parametrize("name", schemas.all_names())
def test_current_version_roundtrips_under_its_own_id(name):
    sb = codecs.book()
    for rec in generate_many(parse_schema(schemas.inline_schema(name), _write_hint=False), 5):
        data = codecs.encode(name, rec, sb)
        assert codecs.HEADER.unpack_from(data, 0)[1] == schemas.pinned_ids()[name]
        assert codecs.decode(data, sb) == (name, rec)


def test_every_current_schema_has_its_own_pinned_id():
    """Fails when a schema (or a type it contains) changed without a new id, and says how to fix it."""
    versions = schemas.pinned_versions()
    pinned = {(v["name"], v["fingerprint"]) for v in versions.values()}
    missing = [(n, fp) for n, fp in schemas.current_fingerprints().items() if (n, fp) not in pinned]
    assert not missing, (
        "these schemas changed (themselves or a type they contain) and have no local wire id yet; "
        "writing them under the old id would make every message already on a topic undecodable:\n"
        + "\n".join(f"  {n} ({fp}): needs id {max(versions) + 1 + i}" for i, (n, fp) in enumerate(missing))
        + "\nFix: run `.venv/bin/python -m streams.registry pin` (adds the ids to schemas/registry.json and the "
          "exact schemas to schemas/history/wire/), and keep the previous version as schemas/history/<name>.<n>.avsc. "
          "Never edit or renumber an existing id.")


def test_pinned_ids_are_immutable_and_unique():
    versions = schemas.pinned_versions()
    assert sorted(versions) == list(range(1, max(versions) + 1)), "ids are given out in order, none skipped or removed"
    assert len({(v["name"], v["fingerprint"]) for v in versions.values()}) == len(versions), "one id per version"
    for sid, v in versions.items():
        s = schemas.load_pinned(sid)
        full = s["name"] if "." in s["name"] else f"{s['namespace']}.{s['name']}"
        assert full == v["name"]
        assert schemas.fingerprint(s) == v["fingerprint"], f"schemas/history/wire/{sid}.{v['name']}.avsc was edited"
        parse_schema(s, _write_hint=False)      # stands alone


@pytest.mark.parametrize("schema_id,name", sorted(LANDED.items()))
def test_landed_ids_keep_naming_their_8c662b8_schema(schema_id, name):
    assert schemas.pinned_versions()[schema_id]["name"] == name
    assert schemas.pinned_versions()[schema_id]["fingerprint"] == schemas.fingerprint(landed_schema(name))


def test_a_schema_change_without_a_new_id_is_refused_on_write(monkeypatch):
    sb = codecs.SchemaBook()
    sb.id_of.pop(codecs.RATED)                # as if RatedCdr changed and nobody pinned it
    with pytest.raises(KeyError, match="streams.registry pin"):
        codecs.encode(codecs.RATED, {}, sb)


def test_an_id_never_given_out_is_rejected():
    with pytest.raises(RejectError) as exc:
        codecs.decode(codecs.HEADER.pack(0, max(schemas.pinned_versions()) + 1000) + b"\x00", codecs.book())
    assert exc.value.reason.value == "unknown_schema"
