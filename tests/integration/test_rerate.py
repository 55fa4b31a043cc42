"""Rerating against both ClickHouse backends (chdb 26.x and clickhouse-server 18.16).

Expected money is computed here with plain integer arithmetic from the test's own tariff
(per started minute × rate), never with the rating core.
"""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from sinks.clickhouse import ddl, periods as P
from streams import rerate as R
from streams.cli.rerate import publish_commands
from streams.core.charge import rated_record
from streams.core.tariff import parse_tariff_text
from tests.support.rerate_tariff import RATE, TARIFF

pytestmark = pytest.mark.integration

NOW = int(datetime(2026, 12, 5, tzinfo=timezone.utc).timestamp() * 1000)


def ms(y, m, d, h=12, mi=0):
    return int(datetime(y, m, d, h, mi, tzinfo=timezone.utc).timestamp() * 1000)


def canonical(i: int, account: str, start_ms: int, billsec: int) -> dict:
    ring = 5
    return {"cdr_key": f"{account}-k{i:04d}", "switch_id": "sw1", "call_id": f"c{i}", "leg": "A",
            "partial_seq": 0, "partial_final": True, "correlation_id": f"c{i}", "account": account,
            "service_user": "u1", "direction": "outbound", "caller_e164": "+31201234567",
            "presented_cli": "+31201234567", "called_e164": "+33142685300", "called_type": "fixed",
            "trunk": "t1", "start_ms": start_ms, "answer_ms": start_ms + ring * 1000,
            "end_ms": start_ms + (ring + billsec) * 1000, "duration_s": ring + billsec, "billsec_s": billsec,
            "answered": True, "disposition": "ANSWERED", "service": "voice", "source_topic": "cdr.canonical",
            "source_partition": 0, "source_offset": i, "source_index": 0, "ingest_ms": start_ms, "raw": b""}


CALLS = [  # (account, start, billsec)
    ("A", ms(2026, 10, 3), 61), ("A", ms(2026, 10, 20), 120), ("A", ms(2026, 11, 2), 1),
    ("A", ms(2026, 11, 15), 59), ("A", ms(2026, 11, 28), 3600),
    ("B", ms(2026, 10, 5), 30), ("B", ms(2026, 10, 25), 181), ("B", ms(2026, 11, 9), 60),
]


def minutes(billsec: int) -> int:
    return -(-billsec // 60)


def expected(version_of) -> dict[tuple[str, str], int]:
    """(account, period) -> micros; version_of(account, period) picks the price list."""
    out: dict[tuple[str, str], int] = {}
    for acct, start, billsec in CALLS:
        period = datetime.fromtimestamp(start / 1000, timezone.utc).strftime("%Y-%m")
        out[(acct, period)] = out.get((acct, period), 0) + minutes(billsec) * RATE[version_of(acct, period)]
    return out


@pytest.fixture
def book():
    return parse_tariff_text(TARIFF, "test.yaml", "yaml")


@pytest.fixture
def landed(ch_backend, book):
    """Migrated tables with CALLS rated at v1 and landed through the columnar insert path."""
    ddl.migrate(ch_backend)
    rows = []
    for i, (acct, start, billsec) in enumerate(CALLS):
        c = canonical(i, acct, start, billsec)
        period = datetime.fromtimestamp(start / 1000, timezone.utc).strftime("%Y-%m")
        rows.append(rated_record(c, book.rate(c, plan="std"), period, NOW - 10_000))
    R.write_rows(ch_backend, rows)
    return ch_backend


def final_by_period(b) -> dict[tuple[str, str], int]:
    rows = b.query(f"SELECT account, period, toInt64(sum(cost_micros)) FROM {b.database}.cdr_rated FINAL "
                   f"GROUP BY account, period")
    return {(a, p): int(v) for a, p, v in rows if int(v) != 0 or True}


def argmax_total(b) -> int:
    rows = b.query(f"SELECT toInt64(sum(c)) FROM (SELECT argMax(cost_micros, rating_version) AS c "
                   f"FROM {b.database}.cdr_rated GROUP BY cdr_key)")
    return int(rows[0][0] or 0)


def run(b, book, **kw):
    kw.setdefault("now_ms", NOW)
    kw.setdefault("run_id", "t")
    return R.run(b, book, tariff_version="v2", **kw)


class FakePublisher:
    sent: list[dict] = []

    def commands(self, cmds):
        cmds = list(cmds)
        FakePublisher.sent.extend(cmds)
        return len(cmds)

    def flush(self, timeout_s=60):
        pass


def test_landed_at_v1(landed):
    assert final_by_period(landed) == expected(lambda a, p: "v1")


def test_rerate_open_period_replaces_rows_and_builds_spend_commands(landed, book):
    b = landed
    res = run(b, book, accounts=["A"], from_ms=ms(2026, 11, 1, 0), to_ms=ms(2026, 12, 1, 0))
    want = expected(lambda a, p: "v2" if (a, p) == ("A", "2026-11") else "v1")
    assert final_by_period(b) == want
    assert argmax_total(b) == sum(want.values())
    delta = want[("A", "2026-11")] - expected(lambda a, p: "v1")[("A", "2026-11")]
    assert delta == (1 + 1 + 60) * (250_000 - 100_000)
    assert res.delta_micros == delta and len(res.replaced) == 3 and not res.adjustments
    FakePublisher.sent = []
    assert publish_commands(res.commands, None, FakePublisher) == 1
    (cmd,) = FakePublisher.sent
    assert cmd["action"] == "adjust_spend" and cmd["account"] == "A" and cmd["period"] == "2026-11"
    assert cmd["delta_micros"] == delta and cmd["issued_ms"] == NOW
    # The command encodes with the real schema.
    from streams import codecs
    name, back = codecs.decode(codecs.encode(codecs.CONTROL, cmd))
    assert back["delta_micros"] == delta and back["period"] == "2026-11"
    # Rerunning is a no-op: the rows already carry the v2 price.
    again = run(b, book, accounts=["A"], from_ms=ms(2026, 11, 1, 0), to_ms=ms(2026, 12, 1, 0))
    assert again.unchanged == 3 and not again.rows and not again.commands
    vers = b.query(f"SELECT max(rating_version) FROM {b.database}.cdr_rated FINAL WHERE account = 'A' "
                   f"AND period = '2026-11'")
    assert int(vers[0][0]) == 2


def test_closed_period_refused_then_reopened(landed, book):
    b = landed
    P.record(b, account="*", period="2026-10", status=P.CLOSED, by="alice", now_ms=NOW)
    with pytest.raises(R.RerateRefused, match="closed financial periods.*A 2026-10"):
        run(b, book, accounts=["A"], from_ms=ms(2026, 10, 1, 0), to_ms=ms(2026, 11, 1, 0))
    assert final_by_period(b) == expected(lambda a, p: "v1")
    P.record(b, account="A", period="2026-10", status=P.OPEN, by="bob", now_ms=NOW + 1)
    with pytest.raises(R.RerateRefused, match="--reopened"):
        run(b, book, accounts=["A"], from_ms=ms(2026, 10, 1, 0), to_ms=ms(2026, 11, 1, 0))
    res = run(b, book, accounts=["A"], from_ms=ms(2026, 10, 1, 0), to_ms=ms(2026, 11, 1, 0), reopened=True)
    want = expected(lambda a, p: "v2" if (a, p) == ("A", "2026-10") else "v1")
    assert final_by_period(b) == want and argmax_total(b) == sum(want.values())
    assert [(c["account"], c["period"]) for c in res.commands] == [("A", "2026-10")]
    # B is still closed by the "*" decision: refused.
    with pytest.raises(R.RerateRefused, match="B 2026-10"):
        run(b, book, accounts=None, from_ms=ms(2026, 10, 1, 0), to_ms=ms(2026, 11, 1, 0), reopened=True)
    log = P.history(b, "2026-10")
    assert [(d.account, d.status, d.changed_by) for d in log] == [("*", "closed", "alice"), ("A", "open", "bob")]


def test_adjust_leaves_closed_rows_and_posts_in_open_period(landed, book):
    b = landed
    P.record(b, account="*", period="2026-10", status=P.CLOSED, by="alice", now_ms=NOW)
    before = b.query(f"SELECT cdr_key, cost_micros, rating_version FROM {b.database}.cdr_rated FINAL "
                     f"WHERE period = '2026-10' ORDER BY cdr_key")
    res = run(b, book, accounts=None, from_ms=ms(2026, 10, 1, 0), to_ms=ms(2026, 11, 1, 0), adjust=True,
              adjust_period="2026-12")
    assert len(res.adjustments) == 4 and not res.replaced
    after = b.query(f"SELECT cdr_key, cost_micros, rating_version FROM {b.database}.cdr_rated FINAL "
                    f"WHERE period = '2026-10' ORDER BY cdr_key")
    assert after == before                               # closed period untouched
    v1 = expected(lambda a, p: "v1")
    v2 = expected(lambda a, p: "v2")
    delta = {a: v2[(a, "2026-10")] - v1[(a, "2026-10")] for a in "AB"}
    assert delta == {"A": (2 + 2) * 150_000, "B": (1 + 4) * 150_000}
    got = final_by_period(b)
    assert got[("A", "2026-12")] == delta["A"] and got[("B", "2026-12")] == delta["B"]
    assert argmax_total(b) == sum(v1.values()) + sum(delta.values())
    # The summary/views include the adjustments (they read cdr_rated FINAL).
    from sinks.reports import summary
    s = summary.summary(b)
    assert s is not None
    total = b.query(f"SELECT toInt64(sum(cost_micros)) FROM {b.database}.v_period_account_billed")
    assert int(total[0][0]) == sum(v1.values()) + sum(delta.values())
    adj = b.query(f"SELECT adjustment_of, period, cost_micros FROM {b.database}.v_adjustments ORDER BY adjustment_of")
    assert [(k, p) for k, p, _ in adj] == [("A-k0000", "2026-12"), ("A-k0001", "2026-12"),
                                          ("B-k0005", "2026-12"), ("B-k0006", "2026-12")]
    start = b.query(f"SELECT DISTINCT toYYYYMM(start_time) FROM {b.database}.cdr_rated FINAL "
                    f"WHERE disposition = 'ADJUSTMENT'")
    assert [int(r[0]) for r in start] == [202612]
    assert sorted((c["account"], c["period"], c["delta_micros"]) for c in res.commands) == [
        ("A", "2026-12", delta["A"]), ("B", "2026-12", delta["B"])]
    # A second --adjust run changes nothing and publishes nothing.
    again = run(b, book, accounts=None, from_ms=ms(2026, 10, 1, 0), to_ms=ms(2026, 11, 1, 0), adjust=True,
                adjust_period="2026-12")
    assert not again.rows and not again.commands and again.unchanged == 4
    assert argmax_total(b) == sum(v1.values()) + sum(delta.values())


def test_partial_close_locks_only_before_the_instant(landed, book):
    b = landed
    P.record(b, account="A", period="2026-11", status=P.PARTIAL, closed_until_ms=ms(2026, 11, 10, 0),
             by="alice", now_ms=NOW)
    assert P.current(b, "2026-11")[0].status == "partial"
    with pytest.raises(R.RerateRefused, match="A 2026-11 \\(partial\\)"):
        run(b, book, accounts=["A"], from_ms=ms(2026, 11, 1, 0), to_ms=ms(2026, 12, 1, 0))
    res = run(b, book, accounts=["A"], from_ms=ms(2026, 11, 1, 0), to_ms=ms(2026, 12, 1, 0), adjust=True,
              adjust_period="2026-12")
    # The 2026-11-02 call is locked → adjusted in 2026-12; the other two are replaced in place.
    assert [r["cdr_key"] for r in res.adjustments] == ["A-k0002#adj@2026-12"]
    assert sorted(r["cdr_key"] for r in res.replaced) == ["A-k0003", "A-k0004"]
    assert res.deltas == {("A", "2026-11"): (1 + 60) * 150_000, ("A", "2026-12"): 150_000}
    assert argmax_total(b) == sum(expected(lambda a, p: "v1").values()) + 62 * 150_000


def test_cli_periods_and_rerate_on_server(native_backend, book, tmp_path, capsys):
    """The `cdrflow periods` / `cdrflow rerate` commands end to end (no Kafka: --no-spend)."""
    from streams.cli.main import main

    b = native_backend
    ddl.migrate(b)
    tariff = tmp_path / "t.yaml"
    tariff.write_text(TARIFF)
    rows = []
    for i, (acct, start, billsec) in enumerate(CALLS):
        c = canonical(i, acct, start, billsec)
        period = datetime.fromtimestamp(start / 1000, timezone.utc).strftime("%Y-%m")
        rows.append(rated_record(c, book.rate(c, plan="std"), period, NOW))
    R.write_rows(b, rows)
    url = f"clickhouse://default:cdrflow-test@127.0.0.1:{b.port}/{b.database}"
    assert main(["periods", "close", "--period", "2026-10", "--by", "alice", "--clickhouse", url, "--no-publish"]) == 0
    args = ["rerate", "--account", "B", "--from", "2026-10-01T00:00:00Z", "--to", "2026-11-01T00:00:00Z",
            "--tariff-version", "v2", "--tariff-file", str(tariff), "--no-spend", "--clickhouse", url]
    assert main(args) == 2
    assert "closed financial periods" in capsys.readouterr().err
    assert main(args + ["--adjust", "--adjust-period", "2026-12"]) == 0
    out = capsys.readouterr().out
    assert "adjustments 2" in out and "money delta +0.750000" in out
    assert main(["periods", "list", "--history", "--clickhouse", url]) == 0
    assert "alice" in capsys.readouterr().out
