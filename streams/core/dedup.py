"""The CDR keys each account applied, kept outside the account's value.

Why a store of its own: the keys used to live in the account value (``seen``), so every batch
decoded, copied and wrote to the changelog the account's whole history (373 KiB per CDR at 20k
CDRs of history, issue 16). Here they live in small *nodes* of a second table, keyed by
(account, call day, hash prefix), and a batch writes only the nodes it changed.

Node layout. The root node of an (account, day) is ``account \\x1f day \\x1f ""``. A node is
either a leaf (``b"L"`` + entries) or a split marker (``b"S"``): a leaf that grows past
``LEAF_MAX`` entries is split by the next bit of the key id into ``prefix+"0"`` and
``prefix+"1"`` (an extendible hash). A quiet account has one node per call day; a call centre
with 30k calls a day has ~1k leaves a day, each at most ``LEAF_MAX`` entries. A look-up walks
from the root (a few dict look-ups); a write rewrites one leaf of at most
``LEAF_MAX * ENTRY`` bytes, whatever the history.

Entry (24 bytes): key id (8) | digest of the billed copy's content (8) | input offset that
applied it (8). The digest makes a redelivery re-emit only the copy that was billed (issue 15);
the offset lets a key written by a batch whose account value was lost in a crash count as not
applied (the account value's offsets are the truth, see ``KeyIndex.lookup``).

Crash safety. The nodes and the account value are two changelog records that a crash can split.
The account value therefore also carries the entries of its last batch (``kpend``) until a later
batch sees them in the store: a node write lost in a crash is repaired from there, and a node
write that outlived its account value is ignored by the offset rule.
"""
from __future__ import annotations

import struct
from hashlib import blake2b
from typing import Callable

ENTRY = 24
LEAF_MAX = 64               # 1.5 KiB per leaf: one CDR's key write stays well under 4 KiB
MAX_DEPTH = 48             # of the key id's 64 bits
UNKNOWN_DIGEST = b"\0" * 8  # keys migrated from the old ``seen`` lists: the billed copy is unknown
LEAF, SPLIT = b"L", b"S"
SEP = "\x1f"
_PACK = struct.Struct(">8s8sq")

# The canonical CDR's content fields (schemas/cdr.v1.CanonicalCdr.avsc without the transport
# fields source_topic/partition/offset/index, ingest_ms and raw, which differ between copies of
# the same content). A test keeps this list equal to the schema's.
CONTENT_FIELDS = ("cdr_key", "switch_id", "call_id", "leg", "partial_seq", "partial_final", "correlation_id",
                  "account", "service_user", "direction", "caller_e164", "presented_cli", "called_e164",
                  "called_type", "trunk", "start_ms", "answer_ms", "end_ms", "duration_s", "billsec_s",
                  "answered", "disposition", "service", "stage", "operator_location", "operator_dedicated")


def key_id(cdr_key: str) -> bytes:
    """8 bytes that name a CDR key inside one account. Hex keys use their first 64 bits, as the
    old ``seen`` lists did (so those lists migrate exactly); any other key is hashed."""
    try:
        b = bytes.fromhex(cdr_key[:16])
        if len(b) == 8:
            return b
    except ValueError:
        pass
    return blake2b(cdr_key.encode(), digest_size=8).digest()


def content_digest(cdr: dict) -> bytes:
    """Digest of what a CDR says (its content fields): two copies with one key and one digest
    bill the same."""
    d = blake2b(repr(tuple(map(cdr.get, CONTENT_FIELDS))).encode(), digest_size=8).digest()
    return d if d != UNKNOWN_DIGEST else b"\0" * 7 + b"\1"


def node_key(account: str, day: str, prefix: str) -> bytes:
    return f"{account}{SEP}{day}{SEP}{prefix}".encode()


def decode_entries(raw: bytes) -> dict[bytes, tuple[bytes, int]]:
    return {k: (d, off) for k, d, off in _PACK.iter_unpack(raw)}


def encode_entries(entries: dict[bytes, tuple[bytes, int]]) -> bytes:
    return b"".join(_PACK.pack(k, d, off) for k, (d, off) in entries.items())


class KeyIndex:
    """Look-ups and inserts against the node store for one batch. Nothing is written until the
    caller takes ``writes()``, so a batch that fails half-way leaves the store as it was.

    Leaves stay in their stored form (``b"L"`` + packed entries): a look-up is one ``find`` in
    at most ``LEAF_MAX * ENTRY`` bytes and an insert appends, so no leaf is decoded per CDR."""

    def __init__(self, get: Callable[[bytes], bytes | None]):
        self._get = get
        self._nodes: dict[bytes, bytes | None] = {}     # leaf bytes, SPLIT, or None (absent)
        self._dirty: dict[bytes, None] = {}
        self._last: tuple = ()                          # the last resolved (account, day, kid) -> leaf

    def _node(self, nk: bytes) -> bytes | None:
        try:
            return self._nodes[nk]
        except KeyError:
            raw = self._nodes[nk] = self._get(nk)
            return raw

    def _leaf(self, account: str, day: str, kid: bytes) -> tuple[bytes, int]:
        last = self._last
        if last and last[0] == kid and last[1] == day and last[2] == account:
            return last[3], last[4]
        base = node_key(account, day, "")
        bits = _bits(kid)
        depth = 0
        while True:
            nk = base + bits[:depth]
            if self._node(nk) != SPLIT or depth >= MAX_DEPTH:
                self._last = (kid, day, account, nk, depth)
                return nk, depth
            depth += 1

    def lookup(self, account: str, day: str, kid: bytes) -> tuple[bytes, int] | None:
        """(digest, offset) of the entry for ``kid``, or None."""
        raw = self._nodes[self._leaf(account, day, kid)[0]]
        if not raw:
            return None
        i = _find(raw, kid)
        if i < 0:
            return None
        _k, digest, off = _PACK.unpack_from(raw, i)
        return digest, off

    def add(self, account: str, day: str, kid: bytes, digest: bytes, offset: int) -> None:
        nk, depth = self._leaf(account, day, kid)
        raw = self._nodes[nk] or LEAF
        entry = _PACK.pack(kid, digest, offset)
        i = _find(raw, kid)
        raw = raw + entry if i < 0 else raw[:i] + entry + raw[i + ENTRY:]
        self._nodes[nk] = raw
        self._dirty[nk] = None
        if (len(raw) - 1) // ENTRY > LEAF_MAX and depth < MAX_DEPTH:
            self._split(base=node_key(account, day, ""), prefix=_bits(kid)[:depth], raw=raw)
            self._last = ()

    def _split(self, base: bytes, prefix: bytes, raw: bytes) -> None:
        self._nodes[base + prefix] = SPLIT
        halves = {b"0": [LEAF], b"1": [LEAF]}
        depth = len(prefix)
        for i in range(1, len(raw), ENTRY):
            halves[_bits(raw[i:i + 8])[depth:depth + 1]].append(raw[i:i + ENTRY])
        for b, parts in halves.items():
            child = b"".join(parts)
            self._nodes[base + prefix + b] = child
            self._dirty[base + prefix + b] = None
            if (len(child) - 1) // ENTRY > LEAF_MAX and depth + 1 < MAX_DEPTH:
                self._split(base, prefix + b, child)

    def drop_day(self, account: str, day: str) -> None:
        """Forget every node of an (account, day): the day left the dedup horizon."""
        base = node_key(account, day, "")
        todo = [b""]
        while todo:
            prefix = todo.pop()
            node = self._node(base + prefix)
            if node is None:
                continue
            if node == SPLIT:
                todo += [prefix + b"0", prefix + b"1"]
            self._nodes[base + prefix] = None
            self._dirty[base + prefix] = None
        self._last = ()

    def writes(self) -> dict[bytes, bytes | None]:
        """Node values to store (None: delete), in the order that survives a crash part-way
        (see ``crash_safe_order``)."""
        return crash_safe_order({nk: self._nodes[nk] for nk in self._dirty})


def crash_safe_order(writes: dict[bytes, bytes | None]) -> dict[bytes, bytes | None]:
    """Leaves and deletions first, then split markers, deepest first.

    The node records go to the changelog one by one, and a crash keeps some first part of them.
    A split marker stored before its children would hide the old leaf's entries behind children
    that were never written: keys the account applied long ago would look new, and a re-sent
    copy would be billed again. Children first, parent last: any first part leaves either the old
    leaf in force (the children are unreachable until the marker lands, and are rewritten when
    the leaf splits again) or a complete split. Deepest markers first, for splits that cascade.
    Callers that merge the writes of several steps must order the merged dict again."""
    splits = sorted((nk for nk, v in writes.items() if v == SPLIT), key=_depth, reverse=True)
    out = {nk: v for nk, v in writes.items() if v != SPLIT}
    out.update((nk, SPLIT) for nk in splits)
    return out


def _depth(nk: bytes) -> int:
    return len(nk) - nk.rfind(SEP.encode()) - 1


def _bits(kid: bytes) -> bytes:
    return format(int.from_bytes(kid, "big"), "064b").encode()


def _find(raw: bytes, kid: bytes) -> int:
    """Offset of ``kid``'s entry in a leaf, or -1 (a match must start on an entry boundary)."""
    i = raw.find(kid, 1)
    while i >= 0 and (i - 1) % ENTRY:
        i = raw.find(kid, i + 1)
    return i


def encode_pending(pending: dict[str, dict[bytes, tuple[bytes, int]]]) -> dict[str, str]:
    """The last batch's entries per day, as JSON-friendly hex for the account value."""
    return {day: encode_entries(e).hex() for day, e in pending.items() if e}


def decode_pending(raw: dict | None) -> dict[str, dict[bytes, tuple[bytes, int]]]:
    return {day: decode_entries(bytes.fromhex(h)) for day, h in (raw or {}).items()}
