"""The transport-neutral message tuple the batch functions take (Faust events, confluent
messages and test fixtures all convert to it)."""
from __future__ import annotations

from typing import NamedTuple


class Msg(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    value: bytes | None
