"""streams.core must stay importable without any streaming or storage framework."""
from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("faust", "confluent_kafka", "aiokafka", "clickhouse_driver", "chdb", "mode")

# A fresh interpreter: in-process, another test may already have imported a framework.
_PROBE = """
import importlib, json, pkgutil, sys
import streams.core as core
names = [m.name for m in pkgutil.walk_packages(core.__path__, core.__name__ + ".")]
for name in names:
    importlib.import_module(name)
forbidden = %r
loaded = sorted(m for m in sys.modules if m.split(".")[0] in forbidden)
print(json.dumps({"modules": names, "loaded": loaded}))
"""


def test_core_imports_no_framework():
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE % (FORBIDDEN,)], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "streams.core.normalize" in result["modules"]
    assert "streams.core.numbering" in result["modules"]
    assert result["loaded"] == [], f"streams.core pulled in {result['loaded']}"
