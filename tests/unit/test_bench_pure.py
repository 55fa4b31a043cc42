"""Pure arithmetic of `cdrflow bench`'s CPU report (no stack, no timing)."""
from __future__ import annotations

from streams.bench import _final_total, _landed_total, cpu_per_cdr


def test_cpu_per_cdr_and_ratios_to_the_raw_decode_cost():
    before = {"tansu": 1.00, "worker-1": 10.00, "worker-2": 4.00, "sink": 3.00}
    after = {"tansu": 1.50, "worker-1": 11.20, "worker-2": 4.40, "sink": 3.30}
    got = cpu_per_cdr(before, after, cdrs=20_000, rows=20_000, raw_cdrs_per_s=125_000)
    # By hand: workers (1.20 + 0.40) s / 20000 = 80 µs; sink 0.30 s / 20000 = 15 µs;
    # broker 0.50 s / 20000 = 25 µs; raw 1e6 / 125000 = 8 µs; ratios 80/8 = 10, 15/8 = 1.875 -> 1.9.
    assert got["worker_cpu_us_per_cdr"] == 80.0
    assert got["sink_cpu_us_per_row"] == 15.0
    assert got["broker_cpu_us_per_cdr"] == 25.0
    assert got["raw_decode_us_per_cdr"] == 8.0
    assert got["worker_cpu_x_raw"] == 10.0 and got["sink_cpu_x_raw"] == 1.9


def test_cpu_report_survives_a_process_that_could_not_be_read():
    got = cpu_per_cdr({"worker-1": None, "sink": 1.0}, {"worker-1": 2.0, "sink": 1.5}, 1000, 0, None)
    assert got["worker_cpu_us_per_cdr"] is None  # no 'before' reading: unknown, not zero
    assert got["sink_cpu_us_per_row"] is None and got["raw_decode_us_per_cdr"] is None


def test_progress_reads_counters_and_verification_reads_final():
    counters = {"rows_landed": {"cdr_rated": 7, "cdr_rejected": 2, "barring_events": 5}}
    status = {"landed": {"cdr_rated": 6, "cdr_rejected": 2, "barring_events": 5}}
    assert _landed_total(counters) == 9 and _final_total(status) == 8
    assert _landed_total(status) == 0  # a FINAL reply is never mistaken for progress counters


def test_call_centre_flatness_is_last_part_over_first():
    from streams.bench_call_centre import flatness

    parts = [{"worker_cpu_us_per_cdr": 50.0}, {"worker_cpu_us_per_cdr": 70.0}, {"worker_cpu_us_per_cdr": 55.0}]
    assert flatness(parts) == 1.1  # 55 / 50
    assert flatness([{"worker_cpu_us_per_cdr": None}, {"worker_cpu_us_per_cdr": 3.0}]) is None
