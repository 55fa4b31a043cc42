"""Faust worker entry point: ``python -m streams.worker`` (what ``cdrflow worker`` runs)."""
from __future__ import annotations

import sys


def check_topics(settings) -> str | None:
    """None when the cluster's topics match streams/topics.py, else a one-line reason.

    A worker on wrong topics does silent damage (a 1-partition ``cdr.normalized`` auto-created
    by the broker, a non-compacted ``account.state``), so it refuses to start instead."""
    from confluent_kafka import KafkaException

    from streams import topic_admin, topics
    from streams.kafka_config import librdkafka_config

    try:
        report = topic_admin.verify(librdkafka_config(settings), topics.plan_from_settings(settings))
    except KafkaException as exc:
        err = exc.args[0] if exc.args else exc
        return f"cannot reach Kafka at {settings.kafka_bootstrap} to check topics: {getattr(err, 'str', lambda: err)()}"
    if report.ok:
        return None
    return ("topics do not match streams/topics.py (run `cdrflow topics apply`): "
            + "; ".join(report.problems))


def main(argv: list[str] | None = None) -> None:
    import json
    import logging

    from streams.kafka_config import KafkaConfigError
    from streams.settings import get_settings

    settings = get_settings()
    try:
        problem = check_topics(settings)
    except KafkaConfigError as exc:
        problem = str(exc)
    if problem:
        print(f"cdrflow worker: {problem}", file=sys.stderr)
        raise SystemExit(2)

    from streams.app import app
    from streams.tariffs import start_watcher

    # Secrets are SecretStr and URL passwords are masked in safe_dict(), so this is safe to log.
    logging.getLogger("cdrflow.worker").warning("event=worker_start settings=%s",
                                                json.dumps(settings.safe_dict(), sort_keys=True))

    # Tariff plans published with `cdrflow tariffs load` replace the file's plans live.
    start_watcher(settings.kafka_client_config())
    # Closed financial periods (`cdrflow periods close`): late CDRs of them go to the open period.
    from streams.periods_feed import start_watcher as start_period_watcher
    start_period_watcher(settings.kafka_client_config())

    args = list(argv if argv is not None else sys.argv[1:])
    sys.argv = ["cdrflow-worker", "worker", "-l", settings.log_level.lower(),
                "--web-host", settings.web_host, "--web-port", str(settings.web_port), *args]
    app.main()


if __name__ == "__main__":
    main()
