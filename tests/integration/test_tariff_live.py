"""Live tariff updates through a real Kafka-compatible broker (tansu): publish, apply, refuse."""
from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from streams import tariffs, topics
from streams.cli.main import main as cli_main
from streams.core.tariff import default_tariff_path

T = int(datetime(2026, 3, 10, 10, 0, tzinfo=timezone.utc).timestamp()) * 1000
WAIT_S = 30


def _yaml(rate: str, version: str) -> str:
    return f"""\
plans:
  default:
    timezone: Europe/Amsterdam
    versions:
      - version: "{version}"
        effective_from: "2000-01-01T00:00:00+01:00"
        destinations:
          nl: {{prefixes: ["31"], groups: [{{start: 0, rate: "{rate}", unit: 60, increment: 60}}]}}
"""


def _call() -> dict:
    return {"direction": "outbound", "called_e164": "+31201234567", "caller_e164": "+31101234567",
            "called_type": "fixed", "start_ms": T, "answer_ms": T, "billsec_s": 60, "answered": True}


def _wait(pred, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; status={tariffs.tariff_status()}")


@pytest.fixture()
def broker(tmp_path: Path):
    from streams.local.broker import create_topics, start_tansu

    child, bootstrap = start_tansu(tmp_path / "logs")
    try:
        create_topics({"bootstrap.servers": bootstrap}, 8, 4)
        yield bootstrap
    finally:
        child.stop()


@pytest.fixture()
def fresh_book(monkeypatch):
    from streams import settings

    settings.get_settings.cache_clear()
    monkeypatch.setenv("CDRFLOW_TARIFF_FILE", str(default_tariff_path()))
    tariffs.reset_for_tests()
    yield
    tariffs.reset_for_tests()
    settings.get_settings.cache_clear()


def test_publish_apply_and_refuse(broker, fresh_book, tmp_path, capsys):
    base_cost = tariffs.current_book().rate(_call()).cost_micros          # file book: peak nl_fixed 0.02
    assert base_cost == 20_000
    w = tariffs.start_watcher({"bootstrap.servers": broker})
    assert tariffs.start_watcher({"bootstrap.servers": broker}) is w       # once per process
    assert w.wait_assigned(WAIT_S)

    good = tmp_path / "new.yaml"
    good.write_text(_yaml("0.5", "live-1"))
    assert cli_main(["tariffs", "load", str(good), "--bootstrap", broker]) == 0
    _wait(lambda: tariffs.current_book().versions("default") == ("live-1",), "the published plan")
    assert tariffs.current_book().rate(_call()).cost_micros == 500_000
    assert "callcentre" in tariffs.current_book().plans                   # other file plans stay
    st = tariffs.tariff_status()
    assert st["plans"]["default"] == {"in_force": "live-1", "versions": ["live-1"], "source": "topic:new.yaml"}
    assert st["plans"]["callcentre"]["source"] == "file" and st["last_error"] is None

    # The CLI refuses an invalid file whole, before publishing anything.
    bad = tmp_path / "bad.yaml"
    bad.write_text(_yaml("0.5", "live-2").replace('rate: "0.5"', "rate: 0.5"))
    assert cli_main(["tariffs", "load", str(bad), "--bootstrap", broker]) == 2
    assert "row 8" in capsys.readouterr().err

    # An invalid message that reaches the topic anyway (another producer) is refused by the
    # watcher: the previous book stays and the status names row and problem.
    from confluent_kafka import Producer

    from streams.partitioning import producer_config

    p = Producer(producer_config({"bootstrap.servers": broker}))
    p.produce(topics.TARIFFS, key=b"default",
              value=tariffs.encode_plan_message(bad.read_text(), "yaml", "bad.yaml"))
    assert p.flush(WAIT_S) == 0
    _wait(lambda: tariffs.tariff_status()["last_error"] is not None, "the refusal")
    err = tariffs.tariff_status()["last_error"]
    assert err["plan"] == "default" and err["row"] == 8 and "quoted decimal" in err["problem"]
    assert tariffs.current_book().versions("default") == ("live-1",)
    assert tariffs.current_book().rate(_call()).cost_micros == 500_000

    # A later valid update still applies; a tombstone restores the file's plan.
    good.write_text(_yaml("0.25", "live-3"))
    assert cli_main(["tariffs", "load", str(good), "--bootstrap", broker]) == 0
    _wait(lambda: tariffs.current_book().versions("default") == ("live-3",), "the second plan")
    assert tariffs.current_book().rate(_call()).cost_micros == 250_000
    capsys.readouterr()
    assert cli_main(["tariffs", "show", "--topic", "--bootstrap", broker, "--plan", "default"]) == 0
    shown = capsys.readouterr()
    assert "live-3" in shown.out and "0.25" in shown.out and "row 8" in shown.err   # refused one noted
    p.produce(topics.TARIFFS, key=b"default", value=None)
    assert p.flush(WAIT_S) == 0
    _wait(lambda: tariffs.current_book().versions("default") == ("2026-01",), "the tombstone")
    assert tariffs.current_book().rate(_call()).cost_micros == base_cost

    # A second worker process starting now replays the topic from the beginning.
    other = tariffs.TariffWatcher({"bootstrap.servers": broker}, base=tariffs._load_file_book(),
                                  install=lambda b: None).start()
    try:
        _wait(lambda: other.applied + other.rejected >= 4, "a replay from the beginning")
        assert other.rejected == 1 and "default" not in other.overrides   # ends with the tombstone
    finally:
        other.stop()

    t0 = time.monotonic()
    tariffs.stop_watcher()
    # Bounded, not timed: the watcher polls in short steps, so stopping must not hang.
    assert time.monotonic() - t0 < 30 and not w.running
