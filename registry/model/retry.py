"""Retrying what another party made fail for a while: transaction conflicts between concurrent
writers (PostgreSQL deadlock 40P01, serialization failure 40001) and outages of the database or
the broker. Each retry is logged as one JSON line (logger ``registry.retry``).

Two policies:
- ``on_conflict(fn)``: rerun a transaction a few times with a short, jittered backoff. Rows are
  written in key order, so conflicts are rare; two writers that still collide are untangled by
  the jitter.
- ``Outage``: rerun a step with exponential backoff (0.2 s doubling to 5 s) until it succeeds or
  an outage has lasted ``timeout`` seconds; then the last error propagates."""

from __future__ import annotations

import logging
import random
import time
from typing import Any, Callable, TypeVar

import sqlalchemy as sa

__all__ = ["CONFLICT_SQLSTATES", "sqlstate", "is_conflict", "is_db_outage", "is_broker_outage", "on_conflict", "Outage"]

T = TypeVar("T")
log = logging.getLogger("registry.retry")

CONFLICT_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock_detected, serialization_failure
CONFLICT_ATTEMPTS = 8
CONFLICT_BASE_SECONDS = 0.02  # doubled per attempt, jittered: ~2.5 s in all at most


def sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None) or exc
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def is_conflict(exc: BaseException) -> bool:
    return isinstance(exc, sa.exc.DBAPIError) and sqlstate(exc) in CONFLICT_SQLSTATES


def is_db_outage(exc: BaseException) -> bool:
    """The database went away or refuses connections for now (not a bad statement): connection
    refused or closed, admin shutdown (57P01), starting up (57P03), SQLite busy."""
    if not isinstance(exc, sa.exc.DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
        return True
    return (sqlstate(exc) or "").startswith(("08", "57P"))


def is_broker_outage(exc: BaseException) -> bool:
    from kafka.errors import KafkaError

    from registry.exceptions import BrokerError, UndecodableBatchError

    return isinstance(exc, (KafkaError, BrokerError)) and not isinstance(exc, UndecodableBatchError)


def on_conflict(fn: Callable[[], T], attempts: int = CONFLICT_ATTEMPTS) -> T:
    """``fn()`` (one whole transaction), rerun while it fails with a deadlock or serialization
    failure; the last failure propagates."""
    for attempt in range(1, attempts + 1):
        try:
            return fn()
        except sa.exc.DBAPIError as exc:
            if not is_conflict(exc) or attempt == attempts:
                raise
            pause = CONFLICT_BASE_SECONDS * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
            log.warning("retry", extra={"fields": {"what": "transaction", "sqlstate": sqlstate(exc), "attempt": attempt,
                                                   "wait_s": round(pause, 3)}})
            time.sleep(pause)
    raise AssertionError("unreachable")


class Outage:
    """Backoff across calls: ``call(fn, what)`` retries ``fn`` while ``retryable(exc)``; the
    clock of the outage starts at its first failure and stops at the next success (of any step),
    so an outage spanning several steps is bounded once by ``timeout``."""

    def __init__(self, timeout: float, retryable: Callable[[BaseException], bool], first: float = 0.2, most: float = 5.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout, self.retryable, self.first, self.most = timeout, retryable, first, most
        self.sleep, self.clock = sleep, clock
        self.since: float | None = None
        self.attempt = 0

    def ok(self) -> None:
        if self.since is not None:
            log.info("recovered", extra={"fields": {"after_s": round(self.clock() - self.since, 1), "attempts": self.attempt}})
        self.since, self.attempt = None, 0

    def failed(self, exc: BaseException, what: str, began: float | None = None) -> None:
        """Note a failure (of a step that ``began`` then); sleep the backoff, or re-raise ``exc``
        once the outage is too long."""
        now = self.clock()
        if self.since is None:
            self.since = now if began is None else began
        self.attempt += 1
        if now - self.since >= self.timeout:
            log.error("outage_timeout", extra={"fields": {"what": what, "after_s": round(now - self.since, 1),
                                                          "error": _describe(exc)}})
            raise exc
        pause = min(self.most, self.first * 2 ** (self.attempt - 1))
        pause = min(pause, max(0.0, self.since + self.timeout - now))
        log.warning("retry", extra={"fields": {"what": what, "attempt": self.attempt, "wait_s": round(pause, 2),
                                               "outage_s": round(now - self.since, 1), "error": _describe(exc)}})
        self.sleep(pause)

    def call(self, fn: Callable[[], T], what: str, proves: bool = True) -> T:
        """``fn()``, retried; its success ends the outage unless ``proves`` is False (a Kafka
        poll that returns nothing says nothing about the broker)."""
        while True:
            began = self.clock()
            try:
                result = fn()
            except Exception as exc:
                if not self.retryable(exc):
                    raise
                self.failed(exc, what, began)  # a step that blocked before failing counts as outage
                continue
            if proves:
                self.ok()
            return result


def _describe(exc: BaseException) -> str:
    orig: Any = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return f"{orig.__class__.__name__}: {text[0] if text else ''}"[:300]
