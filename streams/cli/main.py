"""The ``cdrflow`` command. Each sub-command lives in its own module with a ``register`` hook."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from streams.kafka_config import KafkaConfigError

# Modules under streams.cli that provide ``register(subparsers)``; a missing one is skipped so
# that a partial install still gives a working command.
COMMAND_MODULES = ["stack_cmds", "simulate", "publish", "collect", "account", "barring", "recycle", "tariffs",
                   "clickhouse", "report", "rerate", "periods", "bench", "authload", "notifications", "topics_cmds", "portal"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdrflow", description="CDR mediation, rating and bill-shock control on Kafka")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"streams.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"streams.cli.{name}":
                continue
            raise
        mod.register(sub)
    return parser


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        return 130
    except UserError as exc:
        print(f"cdrflow {args.command}: {exc}", file=sys.stderr)
        return 2
    except KafkaConfigError as exc:   # CDRFLOW_KAFKA_* settings that contradict each other
        print(f"cdrflow {args.command}: {exc}", file=sys.stderr)
        return 2
    return int(rc or 0)


class UserError(Exception):
    """An error the user can fix; printed without a traceback."""


if __name__ == "__main__":
    sys.exit(main())
