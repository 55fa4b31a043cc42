from streams.settings import Settings


def test_secrets_never_reach_the_logged_settings(monkeypatch):
    monkeypatch.setenv("CDRFLOW_KAFKA_SASL_PASSWORD", "hunter2")
    # A password is only sent with a SASL mechanism and user (streams/kafka_config.py).
    monkeypatch.setenv("CDRFLOW_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("CDRFLOW_KAFKA_SASL_USERNAME", "ops")
    monkeypatch.setenv("CDRFLOW_CLICKHOUSE", "clickhouse://ops:s3cret@127.0.0.1:9000/cdr")
    s = Settings()
    logged = repr(s.safe_dict()) + repr(s)
    assert "hunter2" not in logged and "s3cret" not in logged
    assert s.kafka_client_config()["sasl.password"] == "hunter2"      # still passed to the client
    assert s.safe_dict()["clickhouse"] == "clickhouse://ops:***@127.0.0.1:9000/cdr"
