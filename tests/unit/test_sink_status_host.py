"""The sink's /status and /metrics bind 127.0.0.1 unless configured (compose and Kubernetes set
0.0.0.0 so Prometheus in another container can scrape them)."""
from __future__ import annotations

from sinks.landing import parse_args, serve_status


class _Sink:
    metrics = None


def test_status_binds_loopback_by_default_and_the_configured_host_otherwise(monkeypatch):
    monkeypatch.delenv("CDRFLOW_SINK_STATUS_HOST", raising=False)
    assert parse_args([]).status_host == "127.0.0.1"
    monkeypatch.setenv("CDRFLOW_SINK_STATUS_HOST", "0.0.0.0")
    args = parse_args(["--status-port", "0"])
    assert args.status_host == "0.0.0.0"
    for host in ("127.0.0.1", args.status_host):
        server = serve_status(_Sink(), 0, host)
        try:
            assert server.server_address[0] == host
        finally:
            server.shutdown()
            server.server_close()
