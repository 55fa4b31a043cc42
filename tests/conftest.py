"""Shared fixtures: ClickHouse backends (chdb + a real clickhouse-server) and the local stack."""
from tests.support.conftest_clickhouse import ch_backend, chdb_backend, clickhouse_url, native_backend  # noqa: F401
