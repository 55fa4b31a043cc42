"""Pytest fixtures for the ClickHouse backends. Import them from tests/conftest.py:

    from tests.support.conftest_clickhouse import clickhouse_url, ch_backend, chdb_backend, native_backend  # noqa: F401
"""
from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from tests.support.chserver import ServerUnavailable, clickhouse_server


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


@pytest.fixture(scope="session")
def clickhouse_url(tmp_path_factory):
    """URL of a private clickhouse-server for the whole session (starting one costs seconds)."""
    root = tmp_path_factory.mktemp("chserver")
    try:
        ctx = clickhouse_server(root)
        url = ctx.__enter__()
    except ServerUnavailable as exc:
        if _in_ci():
            pytest.fail(f"CI=true and {exc}", pytrace=False)
        pytest.skip(f"{exc}; native-protocol tests skipped (they fail under CI=true)")
    try:
        yield url
    finally:
        ctx.__exit__(None, None, None)


def _fresh_database_url(base_url: str) -> str:
    """Each test gets its own database on the shared server, so tests never see each other's rows."""
    from clickhouse_driver import Client

    name = f"t_{uuid.uuid4().hex[:12]}"
    client = Client.from_url(base_url)
    try:
        client.execute(f"CREATE DATABASE {name}")
    finally:
        client.disconnect()
    return base_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def native_backend(clickhouse_url):
    from sinks.clickhouse.backend import NativeBackend

    backend = NativeBackend(_fresh_database_url(clickhouse_url))
    yield backend
    backend.close()


@pytest.fixture
def chdb_backend(tmp_path):
    from sinks.clickhouse.backend import ChdbBackend

    # chdb allows one data path per process: close it so the next test can open its own.
    backend = ChdbBackend(str(tmp_path / "chdb"))
    yield backend
    backend.close()


@pytest.fixture(params=["chdb", "native"])
def ch_backend(request):
    """Both backends in turn: the same test must pass on chdb 26.x and clickhouse-server 18.16."""
    yield request.getfixturevalue(f"{request.param}_backend")


# Decoded-Avro-shaped sample records (as fastavro returns them) for sink tests.

T0 = datetime(2026, 11, 3, 9, 30, 0, 123000, tzinfo=timezone.utc)


def rated(i: int, *, account: str | None = None, cost_micros: int | None = None,
          rating_version: int = 1) -> dict:
    start = T0 + timedelta(minutes=i)
    cost = cost_micros if cost_micros is not None else 1_000 * i + 7
    return {
        "cdr_key": f"k{i:06d}", "account": account or f"acc{i % 7}", "service_user": "",
        "period": "2026-11", "switch_id": "sw1", "call_id": f"call-{i}", "leg": "A",
        "correlation_id": f"corr-{i}", "direction": "out", "caller_e164": "+441632960001",
        "presented_cli": "+441632960001", "called_e164": "+33142685300", "called_type": "fixed",
        "trunk": "t1", "destination": "France Fixed", "prefix": "331",
        "start_ms": start, "end_ms": start + timedelta(seconds=61), "duration_s": 61, "billsec_s": 60,
        "answered": True, "disposition": "ANSWERED", "service": "voice", "charged_s": 60,
        "rate_micros": 12_345, "rate_unit_s": 60, "connect_fee_micros": 0,
        "cost_nanos": cost * 1000 + 499, "cost_micros": cost, "tariff_plan": "std", "tariff_version": "v1",
        "rating_version": rating_version, "rated_at_ms": 1_793_000_000_000 + i,
        "ingest_ms": 1_793_000_000_000 + i, "source_partition": i % 3, "source_offset": i,
    }


def rejected(i: int) -> dict:
    return {
        "reject_id": f"r{i:06d}", "reason": "no_tariff", "detail": "no destination matches 999",
        "stage": "charge", "source_topic": "cdr.raw", "source_partition": 0, "source_offset": i,
        "source_index": 0, "raw": bytes([0, 255, i % 256, 10, 39]), "cdr_key": None if i % 2 else f"k{i}",
        "account": "acc1" if i % 3 else None, "rejected_at_ms": 1_793_000_000_000 + i,
    }


def barring(i: int, account: str = "acc1") -> dict:
    return {
        "event_id": f"{account}:2026-11:{i}", "account": account, "seq": i, "period": "2026-11",
        "old_profile": "normal", "new_profile": "low_credit", "spend_micros": 9_000_000 + i,
        "credit_micros": 10_000_000, "soft_limit_micros": 8_000_000, "reason": "soft_limit",
        "cause_cdr_key": f"k{i}" if i % 2 else None, "at_ms": 1_793_000_000_000 + i,
        "cause_ingest_ms": None if i % 2 else 1_793_000_000_000, "max_rate_micros_per_min": 50_000,
        "allowed_destinations": ["112", "999"], "correction": False,
    }


def state(i: int, account: str = "acc1") -> dict:
    return {
        "account": account, "period": "2026-11", "profile": "normal", "spend_micros": 100 * i,
        "credit_micros": 10_000_000, "soft_limit_micros": 8_000_000, "seq": i,
        "updated_ms": 1_793_000_000_000 + i, "max_rate_micros_per_min": 50_000,
        "allowed_destinations": [],
    }
