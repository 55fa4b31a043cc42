"""A worker with a dead agent must not stay up.

Faust marks an agent whose coroutine raised as crashed and keeps the process running: the
worker stays in its consumer group, holds its partitions and does nothing (issue 16: 122,006
CDRs never reached a rated or rejected state, with no alarm). Here any agent error ends the
process at once with a distinctive exit code and one log line saying why, so the supervisor
(systemd, Kubernetes, `cdrflow up`) restarts it and the uncommitted input is read again -
replays are harmless by design (keys and offsets).
"""
from __future__ import annotations

import logging
import os
import sys

import faust

EXIT_AGENT_CRASHED = 70          # EX_SOFTWARE: an internal error, not a configuration one

log = logging.getLogger("cdrflow.worker")


def die(agent: str, exc: BaseException) -> None:
    """Log why and end the process now. ``os._exit``: a graceful Faust stop can wait on the very
    thing that failed (and would commit offsets of a batch that was never fully sent)."""
    reason = f"{type(exc).__name__}: {exc}"[:500]
    try:
        log.critical("event=agent_crashed agent=%s error=%r action=exit exit_code=%d", agent, reason,
                     EXIT_AGENT_CRASHED, exc_info=exc)
        for h in logging.getLogger().handlers + log.handlers:
            h.flush()
    finally:
        # Also unformatted on stderr: the line must survive any logging configuration.
        sys.stderr.write(f"cdrflow worker: agent {agent} crashed ({reason}); exiting with {EXIT_AGENT_CRASHED}\n")
        sys.stderr.flush()
        os._exit(EXIT_AGENT_CRASHED)


class App(faust.App):
    """faust.App whose agents take the worker down when they crash."""

    async def _on_agent_error(self, agent, exc: BaseException) -> None:   # Faust's documented hook
        die(getattr(agent, "name", repr(agent)), exc)
