"""Prometheus metrics (contract §3), one registry per process: the worker serves it with
``consume --metrics-port P``, the web service at ``/metrics``. Labels carry only topics,
partitions, dead-letter reason codes and clock states: never keys, refs or names."""

from __future__ import annotations

import os
import threading
import time
from datetime import datetime, timezone
from typing import Any, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, start_http_server

from registry.exceptions import ConfigError

__all__ = ["REGISTRY", "CONTENT_TYPE", "observe_batch", "set_lag", "refresh_lag", "serve", "exposition", "set_disclosures_due"]

REGISTRY = CollectorRegistry()
CONTENT_TYPE = CONTENT_TYPE_LATEST

EVENTS_INGESTED = Counter("registry_events_ingested", "Events recorded (first time seen).", registry=REGISTRY)
EVENTS_DUPLICATE = Counter("registry_events_duplicate", "Redelivered events, counted and ignored.", registry=REGISTRY)
DEAD_LETTERS = Counter("registry_dead_letters", "Refused events, by dead-letter reason.", ["reason"], registry=REGISTRY)
BATCH_SECONDS = Histogram("registry_batch_seconds", "Time to apply one batch (decode, write, commit).", registry=REGISTRY,
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
CONSUMER_LAG = Gauge("registry_consumer_lag", "Records not yet applied, per partition of the consumed topics.",
                     ["topic", "partition"], registry=REGISTRY)
DISCLOSURES_DUE = Gauge("registry_disclosures_due", "Open requests by e-Evidence clock: due within 24 hours, or overdue.",
                        ["state"], registry=REGISTRY)


def observe_batch(result: Any, dead_reasons: list[str], seconds: float) -> None:
    """Count one applied batch (``result``: an IngestResult)."""
    EVENTS_INGESTED.inc(result.ingested)
    EVENTS_DUPLICATE.inc(result.duplicates)
    for reason in dead_reasons:
        DEAD_LETTERS.labels(reason=reason).inc()
    BATCH_SECONDS.observe(seconds)


def set_lag(lags: Mapping[tuple[str, int], int]) -> None:
    for (topic, partition), lag in lags.items():
        CONSUMER_LAG.labels(topic=topic, partition=str(partition)).set(lag)


def set_disclosures_due(engine: Any, now: Any = None) -> None:
    """Count the open requests whose clock runs out within 24 hours and those past it, from the
    ledger at scrape time (a count must not wait for the next event to change)."""
    from registry.ledger.deadlines import clock_state
    from registry.ledger.disclosures import current_disclosures

    now = now or datetime.now(timezone.utc)
    with engine.connect() as conn:
        states = [clock_state(data, now) for _, data in current_disclosures(conn)]
    for state in ("due_24h", "overdue"):
        DISCLOSURES_DUE.labels(state=state).set(states.count(state))


class _CountingDue:
    """REGISTRY, with ``registry_disclosures_due`` counted from the ledger at each scrape."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def collect(self) -> Any:
        set_disclosures_due(self.engine)
        return REGISTRY.collect()


def serve(port: int, host: str = "0.0.0.0", engine: Any = None) -> None:
    """The text exposition on http://host:port/metrics, from a daemon thread; with ``engine``,
    ``registry_disclosures_due`` too (counted at each scrape, as ``registry serve`` does)."""
    try:
        start_http_server(port, addr=host, registry=REGISTRY if engine is None else _CountingDue(engine))  # type: ignore[arg-type]
    except (OSError, OverflowError) as exc:  # a port in use, or none (70000): the CLI's one line, exit 2
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror if isinstance(exc, OSError) else exc}") from None


def exposition() -> bytes:
    return generate_latest(REGISTRY)


LAG_REFRESH_SECONDS = 15.0
_refreshed = {"at": -LAG_REFRESH_SECONDS}
_refreshing = threading.Lock()


def refresh_lag(engine: Any) -> None:
    """For ``registry serve``: the default group's lag from the store and the broker named by
    ``KAFKA_BOOTSTRAP_SERVERS`` (none set: no lag series), at most every 15 s."""
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or time.monotonic() - _refreshed["at"] < LAG_REFRESH_SECONDS:
        return
    if not _refreshing.acquire(blocking=False):
        return
    try:
        from .status import group_status

        _refreshed["at"] = time.monotonic()
        status = group_status(engine)
        set_lag({(p.topic, p.partition): p.lag for p in status.partitions if p.lag is not None})
    finally:
        _refreshing.release()


def ingest_counted(ingestor: Any, records: list[Any], batch_size: int = 5000) -> Any:
    """``ingestor.ingest(records)`` batch by batch, each batch counted (the HTTP path)."""
    from registry.intake.ingest import IngestResult

    total = IngestResult()
    for start in range(0, len(records), batch_size):
        began = time.monotonic()
        outcome = ingestor.ingest_batch(records[start:start + batch_size])
        observe_batch(outcome.result, [d.reason for d in outcome.dead], time.monotonic() - began)
        total.add(outcome.result)
    return total
