"""Issue 10 hole 10: partner notifications as signed HTTP webhooks, against a real HTTP server
on 127.0.0.1 (http.server in a thread). Retries are counted, never timed: the backoff sleeps
are recorded through the injected ``sleep``."""
from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from streams.core import credit, thresholds
from streams.notifications import (DELIVERED, GAVE_UP, REFUSED, Deliverer, Partner, backoff_s, load_partners,
                                   partner_for, verify)

SECRET = "s3cret-for-tests"


class Receiver:
    """Answers with the queued statuses (then 200) and records every request."""

    def __init__(self):
        self.statuses: list[int] = []
        self.requests: list[tuple[dict, bytes]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers["Content-Length"])
                outer.requests.append((dict(self.headers), self.rfile.read(n)))
                code = outer.statuses.pop(0) if outer.statuses else 200
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def note(kind="hard_limit", nid="ACME-1:*:2026-11:hard_limit:2"):
    return {"notification_id": nid, "account": "ACME-1", "service_user": "", "period": "2026-11", "kind": kind,
            "spend_micros": 10_000_000, "threshold_micros": 10_000_000, "at_ms": 1, "cause_cdr_key": "k9",
            "correction": False}


def deliverer(url, sleeps, **kw):
    return Deliverer([Partner("acme", url, SECRET, ("ACME-*",))], sleep=sleeps.append, clock=lambda: 1_795_000_000,
                     **kw)


def test_signed_json_post_with_idempotency_key(receiver):
    sleeps: list[float] = []
    res = deliverer(receiver.url, sleeps).deliver(note())
    assert (res.outcome, res.attempts, res.status) == (DELIVERED, 1, 200) and sleeps == []
    [(headers, body)] = receiver.requests
    doc = json.loads(body)
    assert doc["notification_id"] == "ACME-1:*:2026-11:hard_limit:2" and doc["kind"] == "hard_limit"
    assert doc["spend_micros"] == 10_000_000 and doc["spend"] == "10.000000"
    assert headers["Content-Type"] == "application/json"
    assert headers["Idempotency-Key"] == "ACME-1:*:2026-11:hard_limit:2"
    # The receiver's own check, computed here with hmac directly.
    want = "sha256=" + hmac.new(SECRET.encode(), b"1795000000." + body, hashlib.sha256).hexdigest()
    assert headers["X-Cdrflow-Timestamp"] == "1795000000" and headers["X-Cdrflow-Signature"] == want
    assert verify(SECRET, headers["X-Cdrflow-Timestamp"], body, headers["X-Cdrflow-Signature"])
    assert not verify("other", headers["X-Cdrflow-Timestamp"], body, headers["X-Cdrflow-Signature"])


def test_retries_with_backoff_keep_the_same_idempotency_key(receiver):
    receiver.statuses = [503, 500, 429]
    sleeps: list[float] = []
    res = deliverer(receiver.url, sleeps).deliver(note())
    assert (res.outcome, res.attempts) == (DELIVERED, 4)
    assert sleeps == [1.0, 2.0, 4.0]
    assert [h["X-Cdrflow-Attempt"] for h, _ in receiver.requests] == ["1", "2", "3", "4"]
    assert {h["Idempotency-Key"] for h, _ in receiver.requests} == {"ACME-1:*:2026-11:hard_limit:2"}
    assert len({b for _, b in receiver.requests}) == 1               # the same body every time


def test_permanent_refusal_and_giving_up(receiver):
    receiver.statuses = [400]
    sleeps: list[float] = []
    assert deliverer(receiver.url, sleeps).deliver(note()).outcome == REFUSED and sleeps == []
    receiver.statuses = [503] * 5
    res = deliverer(receiver.url, sleeps, max_attempts=3).deliver(note())
    assert (res.outcome, res.attempts, res.status) == (GAVE_UP, 3, 503) and sleeps == [1.0, 2.0]


def test_connection_refused_is_retried():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                                                         # nobody listens there now
    sleeps: list[float] = []
    res = deliverer(f"http://127.0.0.1:{port}/x", sleeps, max_attempts=2).deliver(note())
    assert (res.outcome, res.status, sleeps) == (GAVE_UP, None, [1.0])


def test_backoff_is_capped_and_unknown_accounts_have_no_partner():
    assert [backoff_s(i, 1.0, 10.0) for i in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert partner_for([Partner("acme", "http://x", "s", ("ACME-*",))], "OTHER") is None


def test_straight_from_normal_to_blocked_still_sends_the_soft_limit_notice(receiver):
    # Credit 1.00, soft 80 %: one 1.50 call takes the account from normal to blocked at once.
    st, _ = credit.apply_command(None, {"account": "ACME-1", "action": "provision", "credit_micros": 1_000_000,
                                        "timezone": "UTC"}, 1_795_000_000_000)
    events, notes = thresholds.apply_cdr_charge(st, period=st["period"], start_ms=1_795_000_000_000,
                                                service_user="", cost_micros=1_500_000, at_ms=2, cause_key="big")
    assert [(e["old_profile"], e["new_profile"]) for e in events] == [("normal", "blocked")]
    assert [(n["kind"], n["threshold_micros"]) for n in notes] == [("soft_limit", 800_000), ("hard_limit", 1_000_000)]
    d = deliverer(receiver.url, [])
    assert [d.deliver(n).outcome for n in notes] == [DELIVERED, DELIVERED]
    assert [json.loads(b)["kind"] for _, b in receiver.requests] == ["soft_limit", "hard_limit"]


def test_partners_file(tmp_path, monkeypatch):
    f = tmp_path / "p.yaml"
    f.write_text("partners:\n  - {name: acme, url: 'http://127.0.0.1:9/h', secret_env: ACME_SECRET, accounts: ['A*']}\n")
    with pytest.raises(ValueError, match="ACME_SECRET is not set"):
        load_partners(f)
    monkeypatch.setenv("ACME_SECRET", "xyz")
    [p] = load_partners(f)
    assert p.accounts == ("A*",) and "xyz" not in repr(p)
    f.write_text("partners:\n  - {name: acme, url: 'ftp://x', secret: s}\n")
    with pytest.raises(ValueError, match="http"):
        load_partners(f)
