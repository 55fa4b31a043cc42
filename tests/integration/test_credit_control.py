"""Credit control driven through the real agents: CDR sequences and partner commands in, barring
events, notifications and account state out (tansu + Faust worker, no mocks)."""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from streams import topics
from streams.core.charge import utc_now_ms
from streams.core.normalize import normalize
from streams.core.sources import NumberingContext
from streams.core.tariff import load_tariff_book
from streams.local.stack import LocalStack, wait_until
from streams.publisher import Publisher
from streams.settings import DATA_DIR
from tests.support.pipeline import latest_states, read_topic

pytestmark = pytest.mark.integration
BOOK = load_tariff_book(DATA_DIR / "tariff_default.yaml")
NOW = utc_now_ms()


AMS = ZoneInfo("Europe/Amsterdam")


def local_ms(d: datetime) -> int:
    return int(d.timestamp() * 1000)


def last_monday_midnight() -> datetime:
    """The latest Monday 00:00 in Amsterdam at least two hours ago (so calls after it are past)."""
    now = datetime.fromtimestamp(NOW / 1000 - 7200, AMS)
    d = datetime(now.year, now.month, now.day, tzinfo=AMS) - timedelta(days=now.weekday())
    return d


def last_month_start() -> datetime:
    """The latest first-of-month 00:00 in Amsterdam at least two hours ago."""
    now = datetime.fromtimestamp(NOW / 1000 - 7200, AMS)
    return datetime(now.year, now.month, 1, tzinfo=AMS)


def settled_start(ms_ago: int) -> int:
    """A start time about ms_ago in the past at hh:20 UTC. The tariff's bands change on the local
    hour (Amsterdam is a whole-hour offset), so 10-minute calls from here never straddle a change
    and cost the same: NOW - ms_ago once flaked when the test started near 07:59 UTC."""
    return (NOW - ms_ago) // 3_600_000 * 3_600_000 + 20 * 60_000


def cdr(account: str, call_id: str, start_ms: int, billsec: int = 600, user: str = "ext1",
        called: str = "0612345678") -> dict:
    return {"switch_id": "sw-cc", "call_id": call_id, "leg": "A", "partial_seq": 0, "partial_final": True,
            "correlation_id": None, "account": account, "service_user": user, "direction": "outbound",
            "caller": "0201234567", "presented_cli": None, "called": called, "trunk": "t1",
            "start_ms": start_ms, "answer_ms": start_ms + 2000, "end_ms": start_ms + 2000 + billsec * 1000,
            "duration_s": billsec + 2, "billsec_s": billsec, "disposition": "ANSWERED", "service": "voice"}


def cost(raw: dict) -> int:
    return BOOK.rate(normalize(raw, NumberingContext(), now_ms=NOW), plan="default").cost_micros


def provision(account: str, credit: int, kind: str = "monthly", pct: int = 80, issued_ms: int = NOW,
              **extra) -> dict:
    return {"command_id": f"prov-{account}", "account": account, "action": "provision", "credit_micros": credit,
            "profile": None, "timezone": "Europe/Amsterdam", "period_kind": kind, "soft_limit_pct": pct,
            "tariff_plan": "default", "always_allowed": ["112"], "issued_ms": issued_ms, **extra}


def command(account: str, action: str, **fields) -> dict:
    return {"command_id": f"{action}-{account}-{utc_now_ms()}", "account": account, "action": action,
            "issued_ms": utc_now_ms(), **fields}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    # The period timer would roll accounts provisioned in a past period before their CDRs arrive.
    st = LocalStack(tmp_path_factory.mktemp("cc"), workers=1, extra_env={"CDRFLOW_PERIOD_CHECK_S": "3600"})
    st.start(sink=False)
    try:
        st.wait_workers_ready(120)
        st.wait_balanced(120)
        yield st, Publisher(st.client_conf)
    finally:
        st.stop()


def events_of(stack, account: str) -> list[dict]:
    evs = [r for _p, _o, _k, _n, r in read_topic(stack.client_conf, topics.BARRING, idle_s=1.0)
           if r["account"] == account]
    # At-least-once: a controller drops repeats by seq; do the same here.
    return sorted({e["seq"]: e for e in evs}.values(), key=lambda e: e["seq"])


def wait_events(stack, account: str, n: int) -> list[dict]:
    got: list[dict] = []

    def enough() -> bool:
        got[:] = events_of(stack, account)
        return len(got) >= n
    wait_until(enough, 90, 0.3, what=f"{n} barring events for {account}", check=stack.check_alive)
    return got


def send(pub, cdrs=(), commands=()):
    if commands:
        pub.commands(list(commands))
    if cdrs:
        pub.cdrs(list(cdrs), "single")
    pub.flush()


def test_weekly_reset_at_local_monday_midnight(env):
    stack, pub = env
    # Sunday 23:20 and Monday 00:30 local time are in different ISO weeks (UTC would disagree).
    boundary = last_monday_midnight()
    late_sunday = cdr("CC-W", "w1", local_ms(boundary - timedelta(minutes=40)))
    monday = cdr("CC-W", "w2", local_ms(boundary + timedelta(minutes=30)), billsec=30)
    wk_before, wk_after = (f"{y}-W{w:02d}" for y, w, _ in (
        (boundary - timedelta(minutes=40)).isocalendar(), boundary.isocalendar()))
    # Provisioned (issued) before the boundary, so the account starts in the earlier week.
    send(pub, commands=[provision("CC-W", cost(late_sunday) - 1, kind="weekly",
                                  issued_ms=local_ms(boundary - timedelta(hours=1)))])
    wait_until(lambda: "CC-W" in latest_states(stack.client_conf), 60, what="provisioning")
    send(pub, cdrs=[late_sunday, monday])
    evs = wait_events(stack, "CC-W", 2)
    assert [(e["period"], e["old_profile"], e["new_profile"], e["reason"]) for e in evs] == [
        (wk_before, "normal", "blocked", "hard_limit"), (wk_after, "blocked", "normal", "period_reset")]


def test_monthly_reset_then_late_cdr_corrects_the_past_period(env):
    stack, pub = env
    boundary = last_month_start()
    prev = boundary - timedelta(minutes=45)                              # last day of the previous month
    oct_last = cdr("CC-M", "m1", local_ms(prev))
    nov_first = cdr("CC-M", "m2", local_ms(boundary + timedelta(minutes=30)), billsec=30)
    p_prev, p_cur = f"{prev.year}-{prev.month:02d}", f"{boundary.year}-{boundary.month:02d}"
    credit = cost(oct_last) * 2
    send(pub, commands=[provision("CC-M", credit, pct=50, issued_ms=local_ms(boundary - timedelta(hours=2)))])
    wait_until(lambda: "CC-M" in latest_states(stack.client_conf), 60, what="provisioning")
    send(pub, cdrs=[oct_last, nov_first])
    evs = wait_events(stack, "CC-M", 2)
    assert [(e["period"], e["new_profile"], e["reason"]) for e in evs[:2]] == [
        (p_prev, "low_credit", "soft_limit"), (p_cur, "normal", "period_reset")]
    # A call of the previous month arrives late: it is booked there, which goes over its limit.
    late = cdr("CC-M", "m3", local_ms(boundary - timedelta(hours=3)), billsec=1800)
    assert cost(oct_last) + cost(late) >= credit
    send(pub, cdrs=[late])
    evs = wait_events(stack, "CC-M", 3)
    corr = evs[2]
    assert (corr["period"], corr["new_profile"], corr["reason"], corr["correction"]) == \
        (p_prev, "blocked", "late_correction", True)
    state = latest_states(stack.client_conf)["CC-M"]
    assert state["period"] == p_cur and state["profile"] == "normal"
    assert state["spend_micros"] == cost(nov_first)


def test_soft_hard_raise_unbar_and_duplicates(env):
    stack, pub = env
    t = settled_start(3_600_000)
    a, b, c = (cdr("CC-R", f"r{i}", t + i * 1000) for i in range(3))
    ca = cost(a)
    assert cost(b) == ca == cost(c)
    send(pub, commands=[provision("CC-R", 2 * ca, pct=50)])
    wait_until(lambda: "CC-R" in latest_states(stack.client_conf), 60, what="provisioning")
    send(pub, cdrs=[a, a, a, b])                        # a is re-sent twice: counted once
    evs = wait_events(stack, "CC-R", 2)
    assert [(e["new_profile"], e["reason"]) for e in evs] == [("low_credit", "soft_limit"), ("blocked", "hard_limit")]
    wait_until(lambda: latest_states(stack.client_conf)["CC-R"]["spend_micros"] == 2 * ca, 60, what="spend")

    send(pub, commands=[command("CC-R", "raise_credit", credit_micros=2 * ca)])
    evs = wait_events(stack, "CC-R", 3)
    assert (evs[2]["old_profile"], evs[2]["new_profile"], evs[2]["reason"]) == ("blocked", "low_credit", "credit_changed")
    assert evs[2]["credit_micros"] == 4 * ca

    send(pub, commands=[command("CC-R", "lower_credit", credit_micros=2 * ca + 1)])
    evs = wait_events(stack, "CC-R", 4)
    assert evs[3]["new_profile"] == "blocked"
    send(pub, commands=[command("CC-R", "unbar")])
    evs = wait_events(stack, "CC-R", 5)
    assert (evs[4]["new_profile"], evs[4]["reason"]) == ("low_credit", "unbar")
    send(pub, cdrs=[c, b])                              # b again: a duplicate; c is new
    wait_until(lambda: latest_states(stack.client_conf)["CC-R"]["spend_micros"] == 3 * ca, 60, what="spend 3x")
    # The unbar lasted until spend grew past 2*ca (its spend at unbar): c blocks again.
    evs = wait_events(stack, "CC-R", 6)
    assert (evs[5]["old_profile"], evs[5]["new_profile"], evs[5]["reason"]) == ("low_credit", "blocked", "hard_limit")
    assert evs[5]["spend_micros"] == 3 * ca and len(events_of(stack, "CC-R")) == 6


def test_service_user_thresholds_notify_once_each(env):
    stack, pub = env
    t = settled_start(7_200_000)
    calls = [cdr("CC-U", f"u{i}", t + i * 1000, user="ext1") for i in range(3)]
    other = cdr("CC-U", "u9", t + 9000, user="ext2")
    one = cost(calls[0])
    send(pub, commands=[provision("CC-U", 100 * one, user_thresholds={"ext1": [one + 1, 2 * one + 1]})])
    wait_until(lambda: "CC-U" in latest_states(stack.client_conf), 60, what="provisioning")
    send(pub, cdrs=calls + [other, calls[2]])

    def notes():
        rows = read_topic(stack.client_conf, topics.NOTIFICATIONS, idle_s=1.0)
        return {r["notification_id"]: r for _p, _o, _k, _n, r in rows if r["account"] == "CC-U"}
    got: dict = {}
    wait_until(lambda: len(got.update(notes()) or got) >= 2, 90, 0.3, what="two user notifications")
    kinds = sorted((n["service_user"], n["kind"], n["spend_micros"], n["threshold_micros"]) for n in got.values())
    assert kinds == [("ext1", "user_threshold_1", 2 * one, one + 1), ("ext1", "user_threshold_2", 3 * one, 2 * one + 1)]


def test_account_cli_waits_for_the_outcome_and_fails_on_refusal(env, capsys):
    """Issue 10 hole 9: `cdrflow account raise-credit NOPE 5` printed "sent" and exited 0."""
    from streams.cli.main import main

    stack, pub = env
    boot = ["--bootstrap", stack.client_conf["bootstrap.servers"]]
    assert main(["account", "raise-credit", "NOPE-CLI", "5", *boot]) == 1
    err = capsys.readouterr().err
    assert "refused: raise_credit for NOPE-CLI: unknown_account" in err
    assert main(["account", "create", "CC-CLI", "--credit", "1.00", *boot]) == 0
    assert main(["account", "raise-credit", "CC-CLI", "0.50", "--json", *boot]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    import json
    reply = json.loads(out[-1])
    assert reply["outcome"] == "applied" and reply["state"]["credit_micros"] == 1_500_000
    assert main(["account", "set-profile", "CC-CLI", "blocked", *boot]) == 0
    assert "applied: set_profile for CC-CLI: profile blocked" in capsys.readouterr().out


def test_late_cdr_of_a_closed_period_is_booked_in_the_open_one(env):
    """Issue 10 hole 7: after `periods close`, a late CDR moved the closed month's total."""
    from streams import codecs
    from streams.core.periods import period_of
    from streams.periods_feed import publish

    stack, pub = env
    start = local_ms(last_month_start() - timedelta(days=2))           # last month, Amsterdam time
    closed = period_of(start, "Europe/Amsterdam", "monthly")
    current = period_of(NOW, "Europe/Amsterdam", "monthly")
    late = cdr("CC-LATE", "late1", start, billsec=120)
    send(pub, commands=[provision("CC-LATE", 100 * cost(late), issued_ms=start - 86_400_000)])
    wait_until(lambda: "CC-LATE" in latest_states(stack.client_conf), 60, what="provisioning")
    before = dict(stack.worker_stats(next(iter(stack.worker_ports)))).get("period_decisions", 0)
    publish(stack.client_conf, {"account": "CC-LATE", "period": closed, "status": "closed",
                                "closed_until_ms": 0, "version": 1})
    wait_until(lambda: stack.worker_stats(next(iter(stack.worker_ports))).get("period_decisions", 0) > before,
               60, 0.3, what="the worker to learn the close")
    send(pub, cdrs=[late])

    def rated():
        out = []
        for _p, _o, _k, name, rec in read_topic(stack.client_conf, topics.RATED, idle_s=1.0):
            out += [r for r in (rec["records"] if name == codecs.RATED_BATCH else [rec]) if r["account"] == "CC-LATE"]
        return out
    got: list = []
    wait_until(lambda: bool(got.extend(rated()) or got), 60, 0.3, what="the late CDR rated")
    assert {r["period"] for r in got} == {current}                    # not the closed month
    evs = wait_events(stack, "CC-LATE", 1)
    assert [(e["period"], e["reason"], e["correction"]) for e in evs] == [(closed, "late_cdr_closed_period", True)]
    wait_until(lambda: latest_states(stack.client_conf)["CC-LATE"]["spend_micros"] == cost(late), 60,
               what="spend in the open month")
    assert latest_states(stack.client_conf)["CC-LATE"]["period"] == current
