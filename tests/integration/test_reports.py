"""Reports and analyst views on both backends: chdb 26.x and clickhouse-server 18.16.

Every total is checked against an independent Python sum over the distinct latest rows
(highest rating_version per cdr_key), after a retried batch and a rerate have landed.
"""
from __future__ import annotations

import csv
from collections import defaultdict
from decimal import Decimal
from xml.etree import ElementTree

import pytest

from sinks.clickhouse import analyst, ddl
from sinks.clickhouse.columns import to_columns
from sinks.reports import itemized as itemized_mod
from sinks.reports import summary as summary_mod
from sinks.reports.html import write_run_report
from sinks.reports.itemized import itemized
from sinks.reports.summary import summary
from tests.support.conftest_clickhouse import (  # noqa: F401  (fixtures)
    barring, ch_backend, chdb_backend, clickhouse_url, native_backend, rated, rejected,
)

pytestmark = pytest.mark.integration

N = 300


def land(backend, table: str, records: list[dict], token: str | None = None) -> None:
    names, cols = to_columns(table, records)
    backend.insert_columns(f"{backend.database}.{table}", names, cols,
                           settings=ddl.insert_settings(backend.version(), token))


def cdr(i: int, **kw) -> dict:
    r = rated(i, **kw)
    r["service_user"] = f"u{i % 3}"
    # Distinct numbers per CDR so the masking test can look for every one of them.
    r["caller_e164"] = f"+44163296{i:04d}"
    r["presented_cli"] = f"+44163297{i:04d}"
    r["called_e164"] = f"+3314268{i:04d}"
    r["destination"] = ("France Fixed", "UK Mobile", "Germany Fixed")[i % 3]
    return r


def latest(records: list[dict]) -> list[dict]:
    """Independent of ClickHouse: the highest rating_version per cdr_key."""
    best: dict[str, dict] = {}
    for r in records:
        cur = best.get(r["cdr_key"])
        if cur is None or r["rating_version"] >= cur["rating_version"]:
            best[r["cdr_key"]] = r
    return list(best.values())


@pytest.fixture
def landed(ch_backend):
    """Migrated backend with a batch landed twice (retry, same and different tokens) and a rerate."""
    applied = analyst.migrate(ch_backend)
    assert [v for v in applied if v > 100] == [101, 102]
    batch = [cdr(i) for i in range(N)]
    for _ in range(2):
        land(ch_backend, "cdr_rated", batch, token="cdr.rated:0:0-299")
    land(ch_backend, "cdr_rated", batch[:50], token="cdr.rated:0:0-49")  # replay after a crash
    rerate = [cdr(i, cost_micros=5_000_000 + i, rating_version=2) for i in (7, 14, 100)]
    land(ch_backend, "cdr_rated", rerate, token="rerate:1")
    land(ch_backend, "cdr_rated", rerate, token="rerate:1")
    land(ch_backend, "cdr_rated", [cdr(7, cost_micros=1, rating_version=1)], token="late")  # stale
    bars = [barring(1, "acc1"), barring(2, "acc1"), barring(1, "acc3")]
    bars[1].update(old_profile="low_credit", new_profile="blocked", reason="hard_limit")
    bars[2].update(reason="credit_changed", new_profile="normal", old_profile="low_credit")
    land(ch_backend, "barring_events", bars, token="bar")
    land(ch_backend, "barring_events", bars, token="bar2")
    land(ch_backend, "cdr_rejected", [rejected(i) for i in range(10)], token="rej")
    truth = latest(batch + rerate + [cdr(7, cost_micros=1, rating_version=1)])
    return ch_backend, truth, bars


def test_migrate_is_idempotent_and_gated(ch_backend):
    applied = analyst.migrate(ch_backend)
    assert applied[-2:] == [101, 102]
    assert analyst.migrate(ch_backend) == []
    db = ch_backend.database
    names = {r[0] for r in ch_backend.query(f"SELECT name FROM system.tables WHERE database = '{db}'")}
    assert set(analyst.OPERATOR_VIEWS) <= names
    adb = analyst.analyst_db(db)
    anames = {r[0] for r in ch_backend.query(f"SELECT name FROM system.tables WHERE database = '{adb}'")}
    assert anames == {"cdr_masked", *analyst.ANALYST_PASSTHROUGH}


def test_itemized_totals_equal_independent_sum(landed):
    backend, truth, _ = landed
    for account in ("acc0", "acc3"):
        rows = itemized(backend, account, "2026-11")
        expect = sorted((r for r in truth if r["account"] == account), key=lambda r: r["start_ms"])
        assert [r["cdr_key"] for r in rows] == [r["cdr_key"] for r in expect]
        assert all(isinstance(r["cost"], Decimal) for r in rows)
        assert [r["start_time"] for r in rows] == sorted(r["start_time"] for r in rows)
        independent = sum(Decimal(r["cost_micros"]).scaleb(-6) for r in expect)
        assert itemized_mod.total(rows) == independent
        assert sum(r["cost"] for r in rows) == independent
    # By user, and a rerated line carries its new cost and version.
    rows = itemized(backend, "acc0", "2026-11", service_user="u1")
    assert {r["service_user"] for r in rows} == {"u1"}
    line = next(r for r in itemized(backend, "acc0", "2026-11") if r["cdr_key"] == "k000007")
    assert (line["rating_version"], line["cost"]) == (2, Decimal("5.000007"))
    assert itemized(backend, "nobody", "2026-11") == []


def test_summary_totals_and_shares(landed):
    backend, truth, bars = landed
    result = summary(backend, "2026-11")
    per_acc: dict[str, int] = defaultdict(int)
    per_user: dict[tuple[str, str], int] = defaultdict(int)
    for r in truth:
        per_acc[r["account"]] += r["cost_micros"]
        per_user[(r["account"], r["service_user"])] += r["cost_micros"]
    assert result["total_micros"] == sum(per_acc.values())
    assert result["calls"] == len(truth)
    assert {a["account"]: a["total_micros"] for a in result["accounts"]} == per_acc
    totals = [a["total_micros"] for a in result["accounts"]]
    assert totals == sorted(totals, reverse=True)
    for acc in result["accounts"]:
        assert acc["total"] == Decimal(per_acc[acc["account"]]).scaleb(-6)
        for u in acc["users"]:
            assert u["total_micros"] == per_user[(acc["account"], u["service_user"])]
            assert isinstance(u["share"], Decimal)
            assert u["share"] == (Decimal(u["total_micros"]) / Decimal(acc["total_micros"])).quantize(Decimal("1e-12"))
        assert abs(sum(u["share"] for u in acc["users"]) - 1) <= Decimal("1e-11")
    assert sorted((b["account"], b["seq"], b["reason"]) for b in result["barring_history"]) == sorted(
        (b["account"], b["seq"], b["reason"]) for b in bars)
    assert len(result["barring_history"]) == 3  # the replayed barring batch counts once
    assert {(b["account"], b["reason"]) for b in result["threshold_breaches"]} == {
        ("acc1", "soft_limit"), ("acc1", "hard_limit")}
    assert result["barring_history"][0]["spend"] == Decimal("9.000001")
    assert sum(r["count"] for r in result["rejects_by_reason"]) == 10
    assert summary(backend, "1999-01")["accounts"] == []
    assert summary(backend)["total_micros"] == result["total_micros"]


def test_rollup_views_do_not_double_count(landed):
    backend, truth, _ = landed
    db = backend.database
    expect = sum(r["cost_micros"] for r in truth)
    for view in ("v_daily_account", "v_daily_user", "v_period_account", "v_period_user",
                 "v_current_spend_account", "v_current_spend_user", "v_top_destinations"):
        (calls, micros), = backend.query(f"SELECT toInt64(sum(calls)), toInt64(sum(cost_micros)) FROM {db}.{view}")
        assert (calls, micros) == (len(truth), expect), view
    (n,), = backend.query(f"SELECT count() FROM {db}.v_itemized")
    assert n == len(truth)
    (n,), = backend.query(f"SELECT count() FROM {db}.v_threshold_breaches")
    assert n == 2
    # And a further retry of the whole batch still changes nothing.
    land(backend, "cdr_rated", [cdr(i) for i in range(N)], token="yet-another-token")
    (micros,), = backend.query(f"SELECT toInt64(sum(cost_micros)) FROM {db}.v_daily_user")
    assert micros == expect


def test_masked_views_expose_no_raw_numbers(landed):
    backend, truth, _ = landed
    adb = analyst.analyst_db(backend.database)
    raw = {r[c] for r in truth for c in ("caller_e164", "presented_cli", "called_e164")}
    for name in ("cdr_masked", *analyst.ANALYST_PASSTHROUGH):
        rows = backend.query(f"SELECT * FROM {adb}.{name}")
        text = " ".join(str(v) for row in rows for v in row)
        leaked = [n for n in raw if n in text or n.lstrip("+") in text]
        assert not leaked, (name, leaked[:3])
    rows = backend.query(f"SELECT caller_e164_masked, caller_e164_id, cdr_key FROM {adb}.cdr_masked ORDER BY cdr_key")
    assert len(rows) == len(truth)
    assert rows[0][0] == "+44163296****"
    assert len({r[1] for r in rows}) == len(truth)  # the keyed hash still tells numbers apart


def test_exports_csv_and_parquet(landed, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    backend, truth, _ = landed
    rows = itemized(backend, "acc2", "2026-11")
    expect = sum(Decimal(r["cost_micros"]).scaleb(-6) for r in truth if r["account"] == "acc2")
    with itemized_mod.to_csv(rows, tmp_path / "i.csv").open() as fh:
        read = list(csv.DictReader(fh))
    assert sum(Decimal(r["cost"]) for r in read) == expect
    table = pq.read_table(itemized_mod.to_parquet(rows, tmp_path / "i.parquet"))
    assert table.schema.field("cost").type == pa.decimal128(18, 6)
    assert sum(table.column("cost").to_pylist()) == expect

    result = summary(backend, "2026-11")
    with summary_mod.to_csv(result, tmp_path / "s.csv").open() as fh:
        srows = list(csv.DictReader(fh))
    assert sum(Decimal(r["user_total"]) for r in srows) == result["total"]
    stable = pq.read_table(summary_mod.to_parquet(result, tmp_path / "s.parquet"))
    assert stable.schema.field("share").type == pa.decimal128(24, 12)
    assert sum(stable.column("user_total").to_pylist()) == result["total"]


def test_html_report(landed, tmp_path):
    backend, truth, _ = landed
    path = write_run_report(backend, tmp_path / "out" / "run.html", "Run <1>",
                            summary={"cdrs": 300, "elapsed_s": Decimal("1.5"), "nested": {"a": 1}})
    text = path.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert "Run &lt;1&gt;" in text and "<script" not in text and "http://" not in text.replace(
        'xmlns="http://www.w3.org/2000/svg"', "")
    assert text.count("<svg") >= 3 and 'class="chart pie"' in text and 'class="chart hbar"' in text
    assert "Barring events" in text and "hard_limit" in text and "Rejects by reason" in text
    assert "no_tariff" in text and "elapsed_s" in text
    for chunk in text.split("<svg")[1:]:  # every chart is well-formed XML
        ElementTree.fromstring("<svg" + chunk.split("</svg>")[0] + "</svg>")
    total = sum(Decimal(r["cost_micros"]).scaleb(-6) for r in truth)
    assert f"{total.quantize(Decimal('0.01')):,}" in text


def test_html_report_on_empty_database(ch_backend, tmp_path):
    analyst.migrate(ch_backend)
    text = write_run_report(ch_backend, tmp_path / "empty.html", "empty").read_text()
    assert "no barring events" in text and "no data" in text


def test_cli_end_to_end(chdb_backend, tmp_path, capsys):
    from streams.cli.main import main

    analyst.migrate(chdb_backend)
    batch = [cdr(i) for i in range(40)]
    land(chdb_backend, "cdr_rated", batch)
    land(chdb_backend, "barring_events", [barring(1, "acc1")])
    chdb_backend.close()  # chdb: one data path per process; the CLI opens it again
    target = ["--clickhouse", chdb_backend.path]

    assert main(["clickhouse", "migrate", *target]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["clickhouse", "sql", "SELECT count() FROM cdr_rated FINAL", *target]) == 0
    assert capsys.readouterr().out.strip() == "40"
    assert main(["clickhouse", "sql", "SELECT nope FROM nowhere", *target]) == 2
    capsys.readouterr()

    assert main(["report", "itemized", "--account", "acc1", "--period", "2026-11", "--format", "csv", *target]) == 0
    lines = list(csv.DictReader(capsys.readouterr().out.splitlines()))
    assert sum(Decimal(r["cost"]) for r in lines) == sum(
        Decimal(r["cost_micros"]).scaleb(-6) for r in batch if r["account"] == "acc1")
    assert main(["report", "itemized", "--account", "acc1", "--period", "2026-11", *target]) == 0
    assert "acc1" in capsys.readouterr().out
    assert main(["report", "itemized", "--account", "acc1", "--period", "2026-11", "--format", "parquet",
                 *target]) == 2  # parquet needs --out
    out = tmp_path / "i.parquet"
    assert main(["report", "itemized", "--account", "acc1", "--period", "2026-11", "--format", "parquet",
                 "--out", str(out), *target]) == 0 and out.exists()
    capsys.readouterr()
    assert main(["report", "summary", "--period", "2026-11", "--format", "json", *target]) == 0
    import json

    data = json.loads(capsys.readouterr().out)
    assert Decimal(data["total"]) == sum(Decimal(r["cost_micros"]).scaleb(-6) for r in batch)
    assert main(["report", "summary", *target]) == 0
    assert "Barring history" in capsys.readouterr().out
    html_out = tmp_path / "r.html"
    assert main(["report", "html", "--out", str(html_out), *target]) == 0 and "<svg" in html_out.read_text()
