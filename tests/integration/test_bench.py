"""cdrflow bench at a tiny size: the command runs end to end and prints one well-formed JSON
object on the last line of stdout. No timing asserts: this machine's speed is not under test."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0


def run_bench(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "streams.cli.main", "bench", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [ln for ln in proc.stdout.splitlines() if ln.strip()]
    assert lines, proc.stderr[-4000:]
    return json.loads(lines[-1])


@pytest.mark.parametrize("mode", ["batch", "single"])
def test_bench_tiny(mode):
    r = run_bench("--cdrs", "2000", "--accounts", "100", "--mode", mode, "--batch-size", "200",
                  "--latency-seconds", "3", "--latency-accounts", "50")
    assert (r["cdrs"], r["accounts"], r["mode"], r["workers"]) == (2000, 100, mode, 1)
    assert set(r["machine"]) >= {"nproc", "memory_gib", "python"} and r["machine"]["nproc"] >= 1
    for key in ("end_to_end_cdrs_per_s", "raw_limit_cdrs_per_s", "ratio", "landing_lag_ms_p99"):
        assert _num(r[key]), (key, r[key])
    assert r["end_to_end_cdrs_per_s"] > 0 and r["raw_limit_cdrs_per_s"] > 0
    assert r["landed_rated"] + r["landed_rejected"] == 2000
    # Progress came from the sink's counters; FINAL verified the distinct rows once at the end.
    assert r["status_poll"]["endpoint"] == "/counters"
    assert r["final_verify"]["distinct_rows"] == 2000 and r["final_verify"]["counted_rows"] >= 2000
    cpu = r["cpu_flood"]
    for key in ("worker_cpu_us_per_cdr", "sink_cpu_us_per_row", "raw_decode_us_per_cdr", "worker_cpu_x_raw"):
        assert _num(cpu[key]), (key, cpu[key])
    assert r["raw_limit"]["cdrs"] == 2000
    lat = r["barring_latency_ms"]
    assert set(lat) >= {"p50", "p99", "n"} and isinstance(lat["n"], int)
    if lat["n"]:                      # small-credit accounts normally cross their limits
        assert _num(lat["p50"]) and _num(lat["p99"]) and lat["p50"] <= lat["p99"]
    assert isinstance(r["landing_lag_method"], str) and r["landing_lag_method"]
    assert set(r["peak_rss_mb"]) >= {"tansu", "worker-1", "sink"}
    assert all(_num(v) for v in r["peak_rss_mb"].values())
    stages = r["stage_profile"]["stages"]
    assert set(stages) >= {"decode", "normalize", "charge"}
    assert all(_num(s["cdrs_per_s"]) for s in stages.values())


def test_bench_rejects_bad_arguments():
    proc = subprocess.run([sys.executable, "-m", "streams.cli.main", "bench", "--cdrs", "0"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "at least 1" in proc.stderr
