"""The live-update logic without a broker: message envelope, refusal keeps the book, tombstones,
status; and the `cdrflow tariffs` commands that need no Kafka."""
from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from streams import tariffs
from streams.cli.main import main as cli_main
from streams.core.tariff import TariffError, default_tariff_path, load_tariff_book, parse_tariff_text

T = int(datetime(2026, 3, 10, 10, 0, tzinfo=timezone.utc).timestamp()) * 1000
FIX = default_tariff_path().parents[2] / "tests" / "fixtures" / "cgrates" / "acme"

YAML = """\
plans:
  default:
    timezone: UTC
    versions:
      - version: "{v}"
        effective_from: "2000-01-01T00:00:00+00:00"
        destinations:
          nl: {{prefixes: ["31"], groups: [{{start: 0, rate: "{rate}", unit: 60, increment: 60}}]}}
"""
CSV = ("plan,version,effective_from,timezone,destination,prefixes,start,rate,unit,increment\n"
       "extra,c1,2000-01-01T00:00:00+00:00,UTC,nl,31,0,0.07,60,60\n")


def call() -> dict:
    return {"direction": "outbound", "called_e164": "+31201234567", "called_type": "fixed",
            "start_ms": T, "answer_ms": T, "billsec_s": 60, "answered": True}


@pytest.fixture()
def watcher():
    installed = []
    w = tariffs.TariffWatcher({}, base=load_tariff_book(default_tariff_path()), install=installed.append)
    w.installed = installed
    return w


def msg(text: str, fmt: str = "yaml", source: str = "t.yaml") -> bytes:
    return tariffs.encode_plan_message(text, fmt, source, 123)


def test_envelope_round_trip():
    env = json.loads(msg("x", "csv", "a.csv"))
    assert env == {"format": "csv", "text": "x", "source": "a.csv", "loaded_ms": 123}
    with pytest.raises(ValueError):
        tariffs.encode_plan_message("x", "xml", "a")


def test_valid_message_replaces_plan_and_keeps_others(watcher):
    assert watcher.handle(b"default", msg(YAML.format(v="v9", rate="0.6")), 0, 5)
    book = watcher.installed[-1]
    assert book.versions("default") == ("v9",) and "callcentre" in book.plans
    assert book.rate(call()).cost_micros == 600_000
    assert watcher.handle(b"extra", msg(CSV, "csv", "extra.csv"), 0, 6)
    book = watcher.installed[-1]
    assert book.rate(call(), plan="extra").cost_micros == 70_000 and book.versions("default") == ("v9",)


@pytest.mark.parametrize("key,value,problem", [
    (b"default", msg(YAML.format(v="v2", rate="0.6").replace('rate: "0.6"', "rate: 0.6")), "quoted decimal"),
    (b"default", b"not json", "JSON envelope"),
    (b"default", json.dumps({"format": "yaml"}).encode(), "envelope"),
    (b"other", msg(YAML.format(v="v2", rate="0.6")), "message key is plan 'other'"),
    (None, msg(YAML.format(v="v2", rate="0.6")), "no key"),
])
def test_invalid_message_keeps_previous_book(watcher, key, value, problem):
    assert watcher.handle(b"default", msg(YAML.format(v="v1", rate="0.5")), 0, 1)
    assert not watcher.handle(key, value, 0, 2)
    assert len(watcher.installed) == 1 and watcher.installed[-1].versions("default") == ("v1",)
    err = watcher.status()["last_error"]
    assert problem in err["problem"] and err["offset"] == 2 and watcher.rejected == 1
    if "quoted" in problem:
        assert err["row"] == 8 and err["path"] == "t.yaml"


def test_tombstone_restores_file_plan(watcher):
    watcher.handle(b"default", msg(YAML.format(v="v1", rate="0.5")))
    watcher.handle(b"default", None)
    assert watcher.installed[-1].versions("default") == ("2026-01",)
    assert watcher.status()["topic_plans"] == {}


def test_status_and_start_stop_without_broker(monkeypatch):
    from streams import settings

    settings.get_settings.cache_clear()
    monkeypatch.setenv("CDRFLOW_TARIFF_FILE", str(default_tariff_path()))
    tariffs.reset_for_tests()
    try:
        st = tariffs.tariff_status()
        assert st["plans"]["default"]["in_force"] == "2026-01" and st["plans"]["default"]["source"] == "file"
        assert st["last_error"] is None and not st["watcher"]["running"]
        # No broker listening: the thread keeps retrying in the background and stops on request.
        w = tariffs.start_watcher({"bootstrap.servers": "127.0.0.1:1", "socket.timeout.ms": 1000})
        assert w.running
        tariffs.stop_watcher(timeout=15)
        assert not w.running
    finally:
        tariffs.reset_for_tests()
        settings.get_settings.cache_clear()


def test_cli_validate(tmp_path, capsys):
    assert cli_main(["tariffs", "validate", str(default_tariff_path())]) == 0
    assert "ok callcentre" in capsys.readouterr().out
    bad = tmp_path / "bad.yaml"
    bad.write_text(YAML.format(v="v1", rate="0.5").replace('increment: 60', 'increment: 0'))
    assert cli_main(["tariffs", "validate", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "row 8" in err and "increment must be >= 1" in err


def test_cli_import_cgrates(tmp_path, capsys):
    out = tmp_path / "acme.yaml"
    assert cli_main(["tariffs", "import-cgrates", str(FIX), "--out", str(out), "--timezone", "Europe/Amsterdam",
                     "--rename", "acme.test:call:*any=acme"]) == 0
    book = parse_tariff_text(out.read_text(), str(out), "yaml")
    assert book.plans == ("acme",) and book.versions("acme") == ("RP_RETAIL_2025", "RP_RETAIL_2026")
    assert cli_main(["tariffs", "validate", str(out)]) == 0
    assert cli_main(["tariffs", "import-cgrates", str(tmp_path), "--out", str(tmp_path / "x.yaml")]) == 2
    assert "missing" in capsys.readouterr().err
    assert not (tmp_path / "x.yaml").exists()


def test_cli_show(capsys):
    assert cli_main(["tariffs", "show", "--plan", "default", "--file", str(default_tariff_path()),
                     "--at", "2026-03-10T10:00:00+01:00"]) == 0
    out = capsys.readouterr().out
    assert "2026-01" in out and "nl_mobile" in out
    assert cli_main(["tariffs", "show", "--plan", "nope", "--file", str(default_tariff_path())]) == 2
