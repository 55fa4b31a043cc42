"""Stable identities for CDRs, rejects and events.

A CDR key must be identical whichever switch resend, replay or worker produced it, so it is a
hash of the fields that name one billable item: switch, call id, leg or stage, partial sequence.
"""
from __future__ import annotations

from hashlib import blake2b


def cdr_key(switch_id: str, call_id: str, leg: str, partial_seq: int) -> str:
    # The unit separator cannot occur in switch output, so field boundaries stay unambiguous.
    material = f"{switch_id}\x1f{call_id}\x1f{leg}\x1f{partial_seq}".encode()
    return blake2b(material, digest_size=16).hexdigest()


def reject_id(stage: str, topic: str, partition: int, offset: int, index: int) -> str:
    material = f"{stage}\x1f{topic}\x1f{partition}\x1f{offset}\x1f{index}".encode()
    return blake2b(material, digest_size=16).hexdigest()


def event_id(account: str, seq: int) -> str:
    return f"{account}:{seq}"
