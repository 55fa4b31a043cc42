"""The in-process call-centre profile (`python -m streams.keystore_bench --call-centre`) reports
what the README's explanation of the call-centre run rests on: every CDR charged once per part,
key-node writes per CDR between 0 and 1, growing as each day's keys spread over more leaves."""
from __future__ import annotations

import time

from streams.keystore_bench import call_centre


def test_call_centre_profile_counts_node_writes_per_part():
    out = call_centre(8_000, 2, 2, int(time.time() * 1000))
    parts = out["parts"]
    assert out["cdrs"] == 8_000 and [p["part"] for p in parts] == [1, 2]
    for p in parts:
        assert p["charge_us_per_cdr"] > 0 and p["normalize_us_per_cdr"] > 0
        # At most one leaf write per CDR (a split writes two children but happens once per 32+ keys).
        assert 0 < p["key_node_writes_per_cdr"] <= 1.1
    # Two accounts, 30 days, 4,000 keys per part: the second part finds fuller leaves.
    assert parts[1]["key_nodes"] > parts[0]["key_nodes"]
    assert parts[1]["key_node_bytes_per_cdr"] >= parts[0]["key_node_bytes_per_cdr"]
