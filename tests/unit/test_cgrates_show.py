"""Issue 12: ``cdrflow tariffs show`` lists an imported CGRateS plan (it printed an empty table).

Fixture: tests/fixtures/cgrates/shape_tutorial2 (its CSVs cite the CGRateS files they mirror).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from streams.cli.main import main as cli_main
from streams.cli.tariffs import destination_rows
from streams.core.reasons import RejectError
from streams.core.tariff import parse_tariff_text
from streams.core.tariff.cgrates import import_cgrates_dir, to_yaml

SHAPES = Path(__file__).resolve().parents[1] / "fixtures" / "cgrates"
TUE_10_UTC = 1773136800000   # 2026-03-10T10:00:00Z


@pytest.fixture(scope="module")
def tut2_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("show") / "tut2.yaml"
    out.write_text(to_yaml(import_cgrates_dir(SHAPES / "shape_tutorial2")), encoding="utf-8")
    return out


def test_rows_list_destinations_and_rates_per_timing(tut2_file):
    book = parse_tariff_text(tut2_file.read_text(), str(tut2_file), "yaml")
    vid, rows = destination_rows(book, "lab.test:call:*any", TUE_10_UTC)
    assert vid == "RP_MAIN"
    by = {r[0]: r for r in rows}
    assert set(by) == {"DST_30", "DST_40", "DST_4050", "DST_VM"}
    assert by["DST_4050"][2] == "40 50" and by["DST_VM"][2] == "voicemail"
    # DST_30 has four timings; each line names the timing, its weight, the rate ID and fee, and
    # every GroupIntervalStart of that rate (RT_PEAK: 0.9 per 60 s, by 60 s, then by 1 s).
    lines = by["DST_30"][3].split("\n")
    assert len(lines) == 4
    assert "T_PEAK Mon Tue Wed Thu Fri from 09:00:00 (w10, RT_PEAK, fee 0.25): " \
           "from 0s: 0.9/60s per 60s; from 60s: 0.9/60s per 1s" in lines
    assert "T_WEEKEND Sun Sat (w10, RT_OFF, fee 0.05): from 0s: 0.02/1s per 1s" in lines
    # The dated timing (25 Dec) and the higher weight are visible.
    assert by["DST_40"][3].startswith("T_XMAS months 12 days 25 (w20, RT_OFF")
    assert by["DST_30"][4] == "*up 4"


def test_fallback_units_and_no_activation(tut2_file):
    book = parse_tariff_text(tut2_file.read_text(), str(tut2_file), "yaml")
    _, rows = destination_rows(book, "lab.test:call:3001", TUE_10_UTC)
    assert rows[-1] == ["(fallback)", "cgrates", "", "then lab.test:call:*any", ""]
    # *data rate in bare nanoseconds = units (2 per 1024 bytes).
    _, rows = destination_rows(book, "lab.test:data:*any", TUE_10_UTC)
    assert rows[0][3].endswith("from 0s: 2/1024ns per 1024ns")
    with pytest.raises(RejectError):
        destination_rows(book, "lab.test:call:*any", 0)   # 1970: nothing activated yet


def test_cli_show_prints_the_plan(tut2_file, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")
    assert cli_main(["tariffs", "show", "--file", str(tut2_file), "--plan", "lab.test:call:*any",
                     "--at", "2026-03-10T10:00:00+00:00"]) == 0
    out = capsys.readouterr().out
    assert "version RP_MAIN" in out
    for text in ("DST_30", "DST_4050", "voicemail", "T_PEAK", "0.9/60s per 60s", "fee 0.25"):
        assert text in out, text
