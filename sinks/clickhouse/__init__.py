"""ClickHouse landing for cdrflow (runs as its own process, never inside Faust).

chdb and clickhouse-driver are imported only when a backend is opened, so importing this
package stays cheap for code that only builds SQL or columns.
"""
from sinks.clickhouse.backend import Backend, BackendLocked, ChdbBackend, NativeBackend, open_backend
from sinks.clickhouse.columns import to_columns
from sinks.clickhouse.ddl import landed_counts, migrate, money_total_micros

__all__ = ["Backend", "BackendLocked", "ChdbBackend", "NativeBackend", "open_backend", "to_columns",
           "landed_counts", "migrate", "money_total_micros"]
