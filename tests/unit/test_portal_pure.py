"""Pure parts of the portal: forecast arithmetic, axes, password hashing, grants, the directory."""
from __future__ import annotations

import json
from datetime import date

import pytest

from streams.portal import forecast as F
from streams.portal.directory import Directory
from streams.portal.users import StoreError, UserStore, hash_password, verify_password


def test_forecast_by_hand():
    # 10.00 left, 2.00 spent over 2 days → 1.00/day → 10 days = 864_000 s
    f = F.disconnection(10_000_000, 20_000_000, "normal", 2_000_000, 2 * 86_400, 1_000, None)
    assert (f.kind, f.at_s, f.micros_per_day) == (F.AT, 1_000 + 864_000, 1_000_000)
    # rounds up: 1 micro left at 3 micros per 10 s → ceil(10/3) = 4 s
    assert F.disconnection(9, 10, "normal", 3, 10, 0, None).at_s == 4
    assert F.disconnection(10, 10, "normal", 3, 10, 0, None).kind == F.BLOCKED
    assert F.disconnection(1, 10, "blocked", 3, 10, 0, None).kind == F.BLOCKED
    assert F.disconnection(1, 10, "normal", 0, 10, 0, None).kind == F.NO_SPEND
    assert F.disconnection(10_000_000, 20_000_000, "normal", 2_000_000, 172_800, 0, 864_000).kind == F.AFTER_PERIOD


def test_axes_are_continuous():
    assert [d.day for d in F.days(date(2026, 2, 27), date(2026, 3, 2))] == [27, 28, 1]
    assert F.month_labels(["2026-11", "2027-02"]) == ["2026-11", "2026-12", "2027-01", "2027-02"]


def test_password_hash_is_a_salted_kdf():
    h1, h2 = hash_password("s3cret!", n=2**12), hash_password("s3cret!", n=2**12)
    assert h1 != h2 and "s3cret" not in h1 and h1.startswith("scrypt$4096$")
    assert verify_password("s3cret!", h1) and not verify_password("s3cret?", h1)
    assert not verify_password("s3cret!", "plain$s3cret!")


def test_store_grants_and_file(tmp_path):
    store = UserStore(tmp_path / "u.json")
    store.add("dept", "pw", hash_n=2**12)
    store.grant("dept", "ACC1", [], ["101"])
    u = store.get("dept")
    assert u.can("ACC1", "view", "101") and not u.can("ACC1", "view", "102")
    assert not u.can("ACC1", "view", whole=True) and not u.can("ACC1", "finance", "101")
    assert not u.can("ACC2")
    doc = json.loads((tmp_path / "u.json").read_text())
    assert "pw" not in json.dumps(doc).replace("password_hash", "")
    assert (tmp_path / "u.json").stat().st_mode & 0o077 == 0
    with pytest.raises(StoreError):
        store.grant("dept", "ACC1", ["admin"])
    with pytest.raises(StoreError):
        store.add("dept", "again", hash_n=2**12)
    store.set_disabled("dept", True)
    assert store.authenticate("dept", "pw") is None
    assert store.authenticate("nobody", "pw") is None


def test_directory_follows_worker_threshold_rules():
    d = Directory()
    assert d.get("A").timezone == "UTC" and not d.get("A").known
    d.apply({"account": "A", "action": "provision", "timezone": "Asia/Tokyo", "period_kind": "weekly",
             "user_thresholds": {"*": [1, 2]}})
    d.apply({"account": "A", "action": "set_user_thresholds", "user_thresholds": {"7": [5, 6]}})
    a = d.get("A")
    assert (a.timezone, a.period_kind) == ("Asia/Tokyo", "weekly")
    assert a.thresholds_for("7") == (5, 6) and a.thresholds_for("8") == (1, 2)
    with pytest.raises(ValueError):
        d.apply({"account": "A", "action": "set_user_thresholds", "user_thresholds": {"7": [6, 5]}})
