"""Every Faust table's changelog is a planned topic, so `cdrflow topics apply` creates and checks it.

The table list comes from the Faust app itself (every agent module registered), not from a copy
of it: a table added later without a line in streams/topics.py makes this test fail.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from streams import topics

# A subprocess: importing streams.app installs the tansu/Faust patches process-wide.
_PROBE = """
import json
from streams.app import app
print(json.dumps({"id": app.conf.id, "tables": {
    name: [t.changelog_topic.get_topic_name(), t.partitions] for name, t in app.tables.items()}}))
"""


def _app_tables() -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "CDRFLOW_PARTITIONS": "6"}, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_faust_table_changelog_is_planned_compacted_and_co_partitioned():
    probe = _app_tables()
    tables = probe["tables"]
    # The three tables known today; more may come, and then they must be planned too.
    assert {"accounts", "cdrkeys", "reservations"} <= set(tables)
    planned = {p.name: p for p in topics.plan(6, 4, app_id=probe["id"])}
    for name, (changelog, partitions) in tables.items():
        assert changelog in planned, f"table {name!r}: {changelog} is not in topics.changelog_topics()"
        assert planned[changelog].config["cleanup.policy"] == "compact"
        assert planned[changelog].partitions == partitions == 6
    assert sorted(topics.changelog_topics(probe["id"])) == sorted(c for c, _ in tables.values())
