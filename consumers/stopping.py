"""How the worker stops (contract §3: within 10 s of SIGTERM/SIGINT, whatever it waits on): the
stop request, the outage backoff it cuts short, and the watchdog that forces the exit."""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from typing import Any, Callable

from registry.intake.ingest import IngestResult

__all__ = ["Stopped", "StopRequest", "EXIT_UNFINISHED", "SETTLE_SECONDS", "CLOSE_SECONDS", "FORCE_SECONDS"]

log = logging.getLogger("registry.consumer")

# After SIGTERM/SIGINT: a join in flight may finish until SETTLE_SECONDS, closing the clients
# takes at most CLOSE_SECONDS each, and if anything still blocks (a broker call that ignores its
# timeout) the process exits at FORCE_SECONDS: the open transaction, if any, rolls back and its
# offsets stay uncommitted.
SETTLE_SECONDS = 5.0
CLOSE_SECONDS = 1.5
FORCE_SECONDS = 9.0
# The exit code of a stop that did not finish cleanly: the watchdog forced it, or it ended an
# outage retry (the batch in hand was dropped uncommitted). EX_TEMPFAIL: run it again.
EXIT_UNFINISHED = 75


class Stopped(Exception):
    """A stop was asked while the worker waited out an outage: the batch in hand is dropped
    uncommitted (it is read again by whoever holds its partitions next)."""


class StopRequest:
    """When a stop was asked, and the wake-up for whatever waits on it. With ``signals`` (a
    process started with signal handlers) a stop starts the watchdog."""

    def __init__(self) -> None:
        self.asked: float | None = None
        self.signals = False
        self._event = threading.Event()

    def ask(self, totals: IngestResult, report: Callable[[], Any]) -> None:
        """``report`` is read when the watchdog fires (the CLI may set it after the start)."""
        if self.asked is None:
            self.asked = time.monotonic()
            if self.signals:
                watchdog = threading.Timer(FORCE_SECONDS, lambda: _force_exit(totals, report()))
                watchdog.daemon = True
                watchdog.start()
        self._event.set()

    def pause(self, seconds: float) -> None:
        """The outage backoff, cut short by a stop."""
        if self._event.wait(seconds):
            raise Stopped()

    def settle_until(self) -> float:
        return (self.asked or time.monotonic()) + SETTLE_SECONDS


def _force_exit(totals: IngestResult, report: Callable[[IngestResult], Any] | None) -> None:
    """The stop took longer than the contract allows: leave now with the totals as known (the
    database rolls back what was not committed; nothing committed is lost)."""
    log.warning("forced_stop", extra={"fields": {**totals.model_dump(), "after_s": FORCE_SECONDS}})
    try:
        if report is not None:
            report(totals)
    finally:
        for handler in logging.getLogger("registry").handlers:
            handler.flush()
        sys.stdout.flush()
        os._exit(EXIT_UNFINISHED)
