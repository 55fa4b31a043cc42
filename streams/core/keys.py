"""Stable identities for CDRs, rejects and events.

A CDR key must be identical whichever switch resend, replay or worker produced it, so it is a
hash of the fields that name one billable item: switch, call id, leg or stage, partial sequence.

Field encoding (keys v2). The fields are joined with the unit separator ``\\x1f``; inside a field
``\\x1b`` is written ``\\x1b\\x1b`` and ``\\x1f`` is written ``\\x1b\\x1f``. That encoding is
injective (a reader can always tell a separator from field content), so two different field
tuples can only share a key by a 128-bit hash collision. Keys v1 joined the fields without
escaping, so (``c\\x1fB``, leg ``A``) and (``c``, leg ``B\\x1fA``) got one key.

The escape was chosen over length prefixes on purpose: for every field tuple without ``\\x1b``
or ``\\x1f`` - every CDR a real switch writes - the v2 material is byte-identical to v1, so keys
already stored in account state, ClickHouse and the reject topic stay valid across the upgrade.
Only tuples holding one of the two control characters get a new key; for those,
:func:`legacy_cdr_key` gives the v1 key so the duplicate check can still recognise a copy billed
before the upgrade during the dedup horizon (after one horizon it is no longer needed).
"""
from __future__ import annotations

from hashlib import blake2b

_SEP = "\x1f"
_ESC = "\x1b"
_ESCAPES = str.maketrans({_ESC: _ESC + _ESC, _SEP: _ESC + _SEP})


def _field(s: str) -> str:
    # Membership tests are far cheaper than translate(); almost every field is clean.
    if _SEP in s or _ESC in s:
        return s.translate(_ESCAPES)
    return s


def key_material(switch_id: str, call_id: str, leg: str, partial_seq: int) -> bytes:
    """The injective byte encoding of one CDR's identity fields (hashed by :func:`cdr_key`)."""
    return f"{_field(switch_id)}{_SEP}{_field(call_id)}{_SEP}{_field(leg)}{_SEP}{int(partial_seq)}".encode()


def cdr_key(switch_id: str, call_id: str, leg: str, partial_seq: int) -> str:
    return blake2b(key_material(switch_id, call_id, leg, partial_seq), digest_size=16).hexdigest()


def legacy_cdr_key(switch_id: str, call_id: str, leg: str, partial_seq: int) -> str | None:
    """The v1 key of these fields where it differs from :func:`cdr_key`, else None.

    Only fields holding ``\\x1b`` or ``\\x1f`` key differently under v2. A duplicate check that
    also looks this key up recognises such a CDR applied before the upgrade. The v1 key is
    ambiguous by construction, so a match can also be another call applied *before* the
    upgrade; that residue ends one dedup horizon after the upgrade.
    """
    if not any(_SEP in s or _ESC in s for s in (switch_id, call_id, leg)):
        return None
    material = f"{switch_id}{_SEP}{call_id}{_SEP}{leg}{_SEP}{int(partial_seq)}".encode()
    return blake2b(material, digest_size=16).hexdigest()


def legacy_key_of(cdr: dict) -> str | None:
    """:func:`legacy_cdr_key` of a canonical CDR dict (it carries the identity fields)."""
    return legacy_cdr_key(cdr["switch_id"], cdr["call_id"], cdr["leg"], cdr.get("partial_seq") or 0)


def reject_id(stage: str, topic: str, partition: int, offset: int, index: int) -> str:
    # Topic names cannot hold control characters and the rest are integers: no escaping needed.
    material = f"{stage}\x1f{topic}\x1f{partition}\x1f{offset}\x1f{index}".encode()
    return blake2b(material, digest_size=16).hexdigest()


def event_id(account: str, seq: int) -> str:
    return f"{account}:{seq}"
