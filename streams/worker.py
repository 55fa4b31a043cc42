"""Faust worker entry point: ``python -m streams.worker`` (what ``cdrflow worker`` runs)."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    import json
    import logging

    from streams.app import app, settings
    from streams.tariffs import start_watcher

    # Secrets are SecretStr and URL passwords are masked in safe_dict(), so this is safe to log.
    logging.getLogger("cdrflow.worker").warning("event=worker_start settings=%s",
                                                json.dumps(settings.safe_dict(), sort_keys=True))

    # Tariff plans published with `cdrflow tariffs load` replace the file's plans live.
    start_watcher(settings.kafka_client_config())

    args = list(argv if argv is not None else sys.argv[1:])
    sys.argv = ["cdrflow-worker", "worker", "-l", settings.log_level.lower(),
                "--web-host", settings.web_host, "--web-port", str(settings.web_port), *args]
    app.main()


if __name__ == "__main__":
    main()
