"""ClickHouse landing for cdrflow (runs as its own process, never inside Faust)."""
