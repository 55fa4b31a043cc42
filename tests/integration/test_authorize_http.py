"""/authorize, /call-update and /call-end on a real worker (issue 10 holes 1, 3 and 4).

One local stack (tansu + one worker, no sink): a blocked account must not reach India through
'911'; concurrent calls of one account each get a quota; a call authorised with its call id is
no longer held once its rated CDR lands; reservations survive a worker SIGKILL.
Bounded: every wait has a timeout, the stack is stopped by PID in all cases."""
from __future__ import annotations

import httpx
import pytest

from streams.core.charge import utc_now_ms
from streams.local.stack import LocalStack, wait_until
from streams.publisher import Publisher

pytestmark = pytest.mark.integration

SOURCES = """
default: {country: NL}
switches:
  nyc-1: {country: US, trunk_prefix: "1", international_prefix: "011", timezone: America/New_York}
"""


def provision(account: str, credit_micros: int, allowed: list[str], now: int) -> dict:
    return {"command_id": f"prov-{account}", "account": account, "action": "provision", "credit_micros": credit_micros,
            "profile": None, "timezone": "Europe/Amsterdam", "period_kind": "monthly", "soft_limit_pct": 80,
            "tariff_plan": "default", "always_allowed": allowed, "issued_ms": now}


def test_authorisation_rules_on_the_owning_worker(tmp_path):
    (tmp_path / "sources.yaml").write_text(SOURCES)
    stack = LocalStack(tmp_path / "stack", workers=1,
                       extra_env={"CDRFLOW_AUTHORIZE_QUOTA_S": "300",
                                  "CDRFLOW_SOURCES_FILE": str(tmp_path / "sources.yaml")})
    stack.start(sink=False)
    try:
        stack.wait_workers_ready(120)
        now = utc_now_ms()
        pub = Publisher(stack.client_conf)
        pub.commands([provision("AUTH1", 1_200_000, ["112"], now), provision("AUTH2", 1_000_000, ["112"], now),
                      provision("AUTHB", 1_000_000, ["112", "911", "999"], now),
                      {**provision("AUTHB", 0, [], now), "command_id": "blk", "action": "set_profile",
                       "profile": "blocked", "credit_micros": None, "always_allowed": None}])
        pub.flush()

        def url() -> str:
            return f"http://127.0.0.1:{stack.worker_ports['worker-1']}"

        def get(path: str, **params):
            return httpx.get(f"{url()}{path}", params=params, timeout=10)

        def ask(account: str, dest: str, **extra):
            return get("/authorize", account=account, destination=dest, **extra)

        wait_until(lambda: ask("AUTHB", "112").status_code == 200 and ask("AUTHB", "112").json()["profile"] == "blocked",
                   90, what="both accounts to be known", check=stack.check_alive)

        # Hole 1: '911' is a dialled code, not a prefix of +91 1… (India).
        for dest, extra in [("00911123456789", {}), ("+911123456789", {}), ("011911123456789", {"switch": "nyc-1"})]:
            d = ask("AUTHB", dest, **extra).json()
            assert (d["allowed"], d["reason"]) == (False, "blocked"), (dest, d)
        for dest, extra in [("112", {}), ("911", {"switch": "nyc-1"}), ("112", {"switch": "nyc-1"})]:
            d = ask("AUTHB", dest, **extra).json()
            assert (d["allowed"], d["reason"]) == (True, "always_allowed"), (dest, d)

        # Hole 3: credit 1.20, UK fixed at 0.06/min in 60 s then 6 s steps, quota 300 s: each call
        # reserves 5 min * 0.06 = 0.30, so four concurrent calls fit and the fifth is refused.
        calls = [ask("AUTH1", "+442071234567").json() for _ in range(4)]
        assert [(c["allowed"], c["max_duration_s"], c["reserve_micros"]) for c in calls] == [(True, 300, 300_000)] * 4
        fifth = ask("AUTH1", "+442071234567").json()
        assert (fifth["allowed"], fifth["reason"]) == (False, "no_credit_left")
        # Interim update of the first call after 290 s: the others hold 0.90, so 0.30 is all it
        # may hold: 300 s in all, 10 s more.
        upd = get("/call-update", account="AUTH1", reservation=calls[0]["reservation"], used=290).json()
        assert (upd["allowed"], upd["max_duration_s"], upd["held_micros"]) == (True, 10, 300_000)
        # The second call ends after 61 s: 60 + 6 = 66 s charged * 0.06/60 = 0.066 held until its CDR.
        end = get("/call-end", account="AUTH1", reservation=calls[1]["reservation"], duration=61).json()
        assert end["held_micros"] == 66_000
        # Ending it again (a retried request) gives the same answer; updating it is refused, as
        # are requests without their seconds or for a reservation that does not exist.
        again = get("/call-end", account="AUTH1", reservation=calls[1]["reservation"], duration=61)
        assert (again.status_code, again.json()) == (200, end)
        refused = [get("/call-update", account="AUTH1", reservation=calls[1]["reservation"], used=70),
                   get("/call-update", account="AUTH1", reservation="nope", used=70),
                   get("/call-end", account="AUTH1", reservation="nope", duration=5),
                   get("/call-update", account="AUTH1", reservation=calls[0]["reservation"]),
                   get("/call-end", account="AUTH1", reservation=calls[0]["reservation"])]
        assert [(r.status_code, r.json()["error"]) for r in refused] == [
            (404, f"no open reservation {calls[1]['reservation']!r} for 'AUTH1'"),
            (404, "no open reservation 'nope' for 'AUTH1'"), (404, "no open reservation 'nope' for 'AUTH1'"),
            (400, "give ?account=ID&reservation=RID&used=SECONDS"),
            (400, "give ?account=ID&reservation=RID&duration=SECONDS")]
        # Left: 1.20 - (0.30 + 0.066 + 0.30 + 0.30) = 0.234 -> 60 s + 29 * 6 s = 234 s (0.234).
        d = ask("AUTH1", "+442071234567").json()
        assert (d["allowed"], d["max_duration_s"], d["reserve_micros"]) == (True, 234, 234_000)

        # The rated CDR settles the call authorised with its call id (the canonical CDR's call_id).
        call_id = "a84b4c76e66710@pc33.example.com"
        c = ask("AUTH2", "+442071234567", call_id=call_id).json()
        assert (c["allowed"], c["reserve_micros"], c["call_id"]) == (True, 300_000, call_id), c
        held = lambda: get("/reservations", account="AUTH2").json()["held_micros"]  # noqa: E731
        assert held() == 300_000
        # 61 s answered: 60 s + 1 * 6 s = 66 s * 0.06/60 = 0.066 held after the call-end ...
        assert get("/call-end", account="AUTH2", reservation=c["reservation"], duration=61).json()["held_micros"] == 66_000
        end_ms = utc_now_ms()
        pub.cdrs([{"switch_id": "kam-1", "call_id": call_id, "leg": "A", "partial_seq": 0, "partial_final": True,
                   "correlation_id": None, "account": "AUTH2", "service_user": "u1", "direction": "outbound",
                   "caller": "0201234567", "presented_cli": None, "called": "+442071234567", "trunk": "kpn-1",
                   "start_ms": end_ms - 65_000, "answer_ms": end_ms - 61_000, "end_ms": end_ms, "duration_s": 65,
                   "billsec_s": 61, "disposition": "ANSWERED", "service": "voice"}], "single")
        pub.flush()
        # ... and nothing once the CDR's 0.066 is in the spend: long before the 5-minute expiry.
        wait_until(lambda: held() == 0, 60, what="the rated CDR to settle the reservation", check=stack.check_alive)
        d = ask("AUTH2", "112").json()                 # always allowed: reserves nothing, shows the balance
        assert (d["spend_micros"], d["reserved_micros"], d["remaining_micros"]) == (66_000, 0, 934_000), d

        # Hole 4: SIGKILL the worker; the restarted one reads the reservations table's changelog
        # and still holds 1.20 in all: nothing is left for another call.
        stack.children["worker-1"].kill()
        stack.children.pop("worker-1")
        stack.worker_ports.pop("worker-1")
        stack.start_worker("worker-1")
        stack.wait_workers_ready(120)
        # (an emergency number is answered even for an unknown account, so probe with a national one)
        wait_until(lambda: ask("AUTH1", "0201234567").status_code == 200, 90, what="the restarted worker to answer",
                   check=stack.check_alive)
        after = ask("AUTH1", "+442071234567").json()
        assert (after["allowed"], after["reason"], after["remaining_micros"]) == (False, "no_credit_left", 0), after
        # The settlement was durable too (and the redelivered cdr.rated batch credits nothing twice).
        assert held() == 0
        d = ask("AUTH2", "112").json()
        assert (d["spend_micros"], d["reserved_micros"], d["remaining_micros"]) == (66_000, 0, 934_000), d
        r = ask("NOBODY", "0201234567")
        assert r.status_code == 404 and r.json()["reason"] == "unknown_account"
    finally:
        stack.stop()
