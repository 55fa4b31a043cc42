"""A small corpus of broken inputs, one per reject reason a switch or collector can cause.

The demo mixes them into the stream to show that every input ends somewhere on purpose; the
tests use the same corpus to check each lands with the right reason code.
"""
from __future__ import annotations

import struct

from streams import codecs
from streams.core.reasons import Reason


def corpus(template: dict, now_ms: int, oversize_bytes: int | None = None) -> list[tuple[Reason, bytes]]:
    """(expected reason, message bytes) pairs built from a valid switch CDR ``template``.

    UNKNOWN_ACCOUNT is decided by the account agent (it owns account state), so that entry
    passes normalisation and is rejected one stage later."""
    good = codecs.encode(codecs.SWITCH_CDR, template)

    def variant(i: int, **changes) -> bytes:
        rec = {**template, "call_id": f"{template['call_id']}-bad{i}", **changes}
        return codecs.encode(codecs.SWITCH_CDR, rec)

    out: list[tuple[Reason, bytes]] = [
        (Reason.BAD_MAGIC, b"\x07" + good[1:]),
        (Reason.BAD_MAGIC, b"{\"json\": \"is not avro\"}"),
        (Reason.UNKNOWN_SCHEMA, struct.pack(">bI", 0, 9999) + good[5:]),
        (Reason.UNDECODABLE, good[: len(good) // 2]),
        (Reason.TRAILING_BYTES, good + b"\x00\x01"),
        (Reason.UNMAPPED_ACCOUNT, variant(1, account="")),   # no code, no account_map rule
        (Reason.INVALID_NUMBER, variant(2, called="not-a-number")),
        (Reason.BAD_DURATION, variant(3, duration_s=-5)),
        # Three days on one call: longer than any real call the limits accept.
        (Reason.BAD_DURATION, variant(4, start_ms=now_ms - 4 * 86_400_000, answer_ms=now_ms - 4 * 86_400_000,
                                      end_ms=now_ms - 86_400_000, duration_s=3 * 86_400, billsec_s=3 * 86_400)),
        (Reason.END_BEFORE_START, variant(5, end_ms=template["start_ms"] - 60_000)),
        (Reason.TIME_OUT_OF_RANGE, variant(6, start_ms=now_ms + 400 * 86_400_000,
                                           end_ms=now_ms + 400 * 86_400_000 + 60_000,
                                           answer_ms=None, billsec_s=0, duration_s=60)),
        (Reason.UNKNOWN_ACCOUNT, variant(7, account="NO-SUCH-ACCOUNT")),
        # A batch header that claims 2**62 records but carries none: must not allocate.
        (Reason.UNDECODABLE, struct.pack(">bI", 0, codecs.book().schema_id(codecs.CANONICAL_BATCH)) + b"\xfe\xff\xff\xff\xff\xff\xff\xff\x7f"),
    ]
    if oversize_bytes:
        out.append((Reason.OVERSIZE, b"\x00" * (oversize_bytes + 1)))
    return out
