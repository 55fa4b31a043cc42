"""Partner webhooks end to end (issue 10 hole 10): the deliverer `cdrflow up` starts
(LocalStack.start_webhooks = `notifications deliver --keep-trying`) reads account.notifications
written by a real worker and POSTs them to a real HTTP server on 127.0.0.1, which checks the HMAC
itself (hashlib/hmac here, not the code under test). Bounded: every wait has a deadline."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from streams import codecs, topics
from streams.core.charge import utc_now_ms
from streams.local.stack import LocalStack, wait_until
from streams.publisher import Publisher
from tests.support.pipeline import latest_states

pytestmark = pytest.mark.integration
SECRET = "wh-test-secret-0123456789"
NOW = utc_now_ms()


class Receiver:
    """A partner endpoint: answers 503 to the first ``fail_first`` requests, 200 afterwards."""

    def __init__(self, fail_first: int):
        self.lock = threading.Lock()
        self.fail_left = fail_first
        self.requests: list[dict] = []        # every request, in arrival order
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                payload = self.rfile.read(int(self.headers["Content-Length"]))
                ts = self.headers["X-Cdrflow-Timestamp"]
                mac = hmac.new(SECRET.encode(), ts.encode() + b"." + payload, hashlib.sha256).hexdigest()
                with outer.lock:
                    status = 503 if outer.fail_left > 0 else 200
                    outer.fail_left -= 1
                    outer.requests.append({"key": self.headers["Idempotency-Key"], "status": status,
                                           "attempt": int(self.headers["X-Cdrflow-Attempt"]),
                                           "signed": hmac.compare_digest("sha256=" + mac,
                                                                         self.headers["X-Cdrflow-Signature"]),
                                           "body": json.loads(payload)})
                self.send_response(status)
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def accepted(self) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["status"] == 200]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def cdr(account: str, call_id: str, billsec: int) -> dict:
    start = NOW - 3_600_000
    return {"switch_id": "sw-wh", "call_id": call_id, "leg": "A", "partial_seq": 0, "partial_final": True,
            "correlation_id": None, "account": account, "service_user": "ext1", "direction": "outbound",
            "caller": "0201234567", "presented_cli": None, "called": "0612345678", "trunk": "t1",
            "start_ms": start, "answer_ms": start + 2000, "end_ms": start + 2000 + billsec * 1000,
            "duration_s": billsec + 2, "billsec_s": billsec, "disposition": "ANSWERED", "service": "voice"}


@pytest.fixture()
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("WH_TEST_SECRET", SECRET)          # secret_env: the file holds no secret
    rx = Receiver(fail_first=2)
    partners = tmp_path / "partners.yaml"
    partners.write_text(f"partners:\n  - name: test\n    url: {rx.url}\n    secret_env: WH_TEST_SECRET\n"
                        f"    accounts: [\"WH-*\"]\n")
    st = LocalStack(tmp_path / "stack", workers=1, extra_env={"CDRFLOW_PERIOD_CHECK_S": "3600"})
    st.start(sink=False)
    try:
        st.wait_workers_ready(120)
        st.wait_balanced(120)
        yield st, rx, partners
    finally:
        st.stop()
        rx.close()


def test_notifications_reach_the_partner_signed_at_least_once_in_order(env):
    stack, rx, partners = env
    fast = ("--max-attempts", "2", "--first-backoff", "0.2", "--max-backoff", "0.5")
    stack.start_webhooks(partners, *fast)
    pub = Publisher(stack.client_conf)
    # Credit 0.50; one 10-minute NL mobile call costs 0.60 off-peak or 0.80 peak (10 x 0.06 / 0.08,
    # tariff_default.yaml nl_mobile): straight normal -> blocked, which sends the soft-limit notice
    # and then the hard-limit one (hole 10's last sentence).
    pub.commands([{"command_id": "prov-WH-1", "account": "WH-1", "action": "provision", "credit_micros": 500_000,
                   "profile": None, "timezone": "UTC", "period_kind": "monthly", "soft_limit_pct": 80,
                   "tariff_plan": "default", "always_allowed": [], "issued_ms": NOW - 86_400_000}])
    pub.flush()
    wait_until(lambda: "WH-1" in latest_states(stack.client_conf), 60, what="provisioning", check=stack.check_alive)
    pub.cdrs([cdr("WH-1", "wh1", 600)], "single")
    pub.flush()
    wait_until(lambda: len(rx.accepted()) >= 2, 90, 0.3, what="two webhooks accepted", check=stack.check_alive)
    first, second = rx.accepted()[:2]
    assert [first["body"]["kind"], second["body"]["kind"]] == ["soft_limit", "hard_limit"]
    assert {first["body"]["account"], second["body"]["account"]} == {"WH-1"}
    # The first notice met two 503s: max attempts (2) used up, then --keep-trying went back to it
    # (same Idempotency-Key) rather than stopping or skipping to the next one.
    assert [(r["key"], r["status"], r["attempt"]) for r in rx.requests[:3]] == [
        (first["key"], 503, 1), (first["key"], 503, 2), (first["key"], 200, 1)]
    assert first["key"] == first["body"]["notification_id"] != second["key"]
    assert all(r["signed"] for r in rx.requests)
    assert stack.children["webhooks"].alive()

    # Restart: delivered notices were committed and are not sent again; a new one (written straight
    # to the topic, same partition, so a re-sent old one would arrive before it) is.
    stack.stop_child("webhooks")
    later = {**first["body"], "notification_id": "WH-1:*:manual:3", "kind": "user_threshold_1"}
    later = {k: later[k] for k in ("notification_id", "account", "service_user", "period", "kind", "spend_micros",
                                   "threshold_micros", "at_ms", "cause_cdr_key", "correction")}
    pub.send(topics.NOTIFICATIONS, codecs.encode(codecs.NOTIFICATION, later), key=b"WH-1")
    pub.flush()
    before = len(rx.requests)
    stack.start_webhooks(partners, *fast)
    wait_until(lambda: len(rx.accepted()) >= 3, 90, 0.3, what="the third webhook", check=stack.check_alive)
    assert [r["key"] for r in rx.requests[before:]] == ["WH-1:*:manual:3"]
