"""Login attempt limiting: per user name, per client address, lockout window (injected clock)."""
from __future__ import annotations

import re

from starlette.testclient import TestClient

from streams.portal.app import PortalConfig, create_app
from streams.portal.directory import Directory
from streams.portal.sessions import Sessions
from streams.portal.throttle import LoginThrottle
from streams.portal.users import UserStore

PW = "right password"


class Clock:
    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_user_locked_after_max_failures_until_the_window_ends():
    clock = Clock()
    t = LoginThrottle(max_per_user=3, max_per_address=100, window_s=600, lockout_s=300, clock=clock)
    for _ in range(2):
        t.failed("alice", "10.0.0.1")
        clock.t += 10
    assert t.retry_after("alice", "10.0.0.1") == 0
    t.failed("Alice", "10.0.0.2")                  # names compare case-insensitively; another address
    assert t.retry_after("alice", "10.0.0.9") == 300     # the name is locked from every address
    assert t.retry_after("bob", "10.0.0.1") == 0         # other names are not
    clock.t += 299
    assert t.retry_after("alice", "10.0.0.1") == 1
    clock.t += 1
    assert t.retry_after("alice", "10.0.0.1") == 0


def test_failures_outside_the_window_do_not_count():
    clock = Clock()
    t = LoginThrottle(max_per_user=3, max_per_address=100, window_s=600, lockout_s=300, clock=clock)
    t.failed("alice", "a")
    t.failed("alice", "a")
    clock.t += 600                                 # both leave the window
    t.failed("alice", "a")
    assert t.retry_after("alice", "a") == 0


def test_address_locked_after_trying_many_names_and_success_does_not_reset_it():
    clock = Clock()
    t = LoginThrottle(max_per_user=3, max_per_address=4, window_s=600, lockout_s=300, clock=clock)
    for name in ("u1", "u2", "u3"):
        t.failed(name, "10.0.0.7")
    t.succeeded("u4")
    t.failed("u5", "10.0.0.7")
    assert t.retry_after("anyone", "10.0.0.7") == 300
    assert t.retry_after("anyone", "10.0.0.8") == 0


def test_success_clears_the_name_failures():
    clock = Clock()
    t = LoginThrottle(max_per_user=3, max_per_address=100, clock=clock)
    t.failed("alice", "a")
    t.failed("alice", "a")
    t.succeeded("alice")
    t.failed("alice", "a")
    t.failed("alice", "a")
    assert t.retry_after("alice", "a") == 0


def test_memory_is_bounded():
    t = LoginThrottle(max_keys=10, clock=Clock())
    for i in range(100):
        t.failed(f"user{i}", f"addr{i}")
    assert len(t._fails) <= 10


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def test_portal_refuses_logins_during_lockout_even_with_the_right_password(tmp_path):
    """The lockout answers 429 before the password is checked; after the lockout the right
    password works again. Five wrong passwords for alice lock alice (limit 5)."""
    store = UserStore(tmp_path / "users.json")
    store.add("alice", PW, hash_n=2**12)
    clock = Clock()
    cfg = PortalConfig(clock=clock, sessions=Sessions(clock=clock),
                       throttle=LoginThrottle(max_per_user=5, max_per_address=50, window_s=900, lockout_s=900,
                                              clock=clock))
    app = create_app(None, store, Directory(), cfg)
    c = TestClient(app, follow_redirects=False)
    token = _csrf(c.get("/login").text)

    def attempt(password: str):
        return c.post("/login", data={"username": "alice", "password": password, "csrf": token})

    for _ in range(5):
        assert attempt("wrong").status_code == 401
    r = attempt(PW)
    assert r.status_code == 429 and int(r.headers["Retry-After"]) == 901
    assert "Too many failed logins" in r.text
    clock.t += 899
    assert attempt(PW).status_code == 429
    clock.t += 1
    assert attempt(PW).status_code == 303       # lockout over: the right password logs in


def test_portal_locks_an_address_that_tries_many_names(tmp_path):
    store = UserStore(tmp_path / "users.json")
    store.add("alice", PW, hash_n=2**12)
    clock = Clock()
    cfg = PortalConfig(clock=clock, sessions=Sessions(clock=clock),
                       throttle=LoginThrottle(max_per_user=5, max_per_address=3, clock=clock))
    c = TestClient(create_app(None, store, Directory(), cfg), follow_redirects=False)
    token = _csrf(c.get("/login").text)
    for name in ("x", "y", "z"):
        assert c.post("/login", data={"username": name, "password": "p", "csrf": token}).status_code == 401
    # Same client address (TestClient's "testclient"): refused, though alice herself has no failures.
    assert c.post("/login", data={"username": "alice", "password": PW, "csrf": token}).status_code == 429
