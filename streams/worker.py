"""Faust worker entry point: ``python -m streams.worker`` (what ``cdrflow worker`` runs)."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    from streams.app import app, settings
    from streams.tariffs import start_watcher

    # Tariff plans published with `cdrflow tariffs load` replace the file's plans live.
    start_watcher(settings.kafka_client_config())

    args = list(argv if argv is not None else sys.argv[1:])
    sys.argv = ["cdrflow-worker", "worker", "-l", settings.log_level.lower(),
                "--web-host", settings.web_host, "--web-port", str(settings.web_port), *args]
    app.main()


if __name__ == "__main__":
    main()
