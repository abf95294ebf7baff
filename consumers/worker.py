"""The Kafka worker behind ``registry consume``: a consumer-group member that reads raw bytes
from the transfers and disclosures topics and applies them through the one ingest path.

Per batch (bounded by size and time): decode → write in one DB transaction, with the next
offsets stored in that same transaction → dead letters forwarded to the dead-letter topic and
acknowledged before that transaction commits → offsets committed to Kafka. A crash anywhere
re-delivers at most the batch in flight; the store's ``(source, id)`` dedupe and the offsets kept
in the database make each event count once."""

from __future__ import annotations

import gc
import json
import logging
import resource
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from registry.events import RawRecord
from registry.exceptions import BrokerError
from registry.ingest import BatchOutcome, DeadRecord, Ingestor, IngestResult, few_collections
from registry.kafka import MAX_REQUEST_BYTES, Topics, bootstrap_servers, ensure_topics
from registry.store import ConsumerOffset, table

__all__ = ["WorkerConfig", "Worker"]

log = logging.getLogger("registry.consumer")

# Measured: without a full collection now and then, cyclic garbage that outlived the young
# generations piled up between the interpreter's own rare full collections (RSS 138 → 185 MB over
# 800k events); with one every 50k events it stayed at 128–135 MB, at the same speed.
FULL_COLLECTION_EVERY = 50_000

# The client settings bench/consume.py's bare loop shares, so that the two compare like for like.
CONSUMER_SETTINGS: dict[str, Any] = {
    "enable_auto_commit": False, "auto_offset_reset": "earliest",
    "max_partition_fetch_bytes": 1024 * 1024, "fetch_max_bytes": 4 * 1024 * 1024,  # what the client buffers: bounds the memory
}


@dataclass
class WorkerConfig:
    bootstrap: str | None = None
    group: str = "dataflow-registry"
    topics: Topics = field(default_factory=Topics)
    partitions: int = 3
    batch_size: int = 2000  # measured: as fast as 5000 or 10000, and 30 MB less at the peak
    batch_seconds: float = 0.5
    stop_when_idle: float | None = None
    max_events: int | None = None
    session_timeout_ms: int = 45000
    heartbeat_interval_ms: int = 3000
    # How long the broker may hold a fetch. Kafka's 500 ms default let the test broker (tansu)
    # hold fetches with data ready: measured, consume and a bare loop alike stalled ~500 ms now
    # and then, a third to two thirds of their time. 50 ms costs an idle worker 20 fetches/s.
    fetch_max_wait_ms: int = 50


class Worker:
    def __init__(self, engine: Engine, config: WorkerConfig) -> None:
        self.engine, self.config = engine, config
        self.bootstrap = bootstrap_servers(config.bootstrap)
        self.totals = IngestResult()
        self._stop = False
        self._stored: dict[TopicPartition, int] = {}  # next offsets applied per partition, from the DB

    def stop(self, *_: Any) -> None:
        """Finish the batch in hand, commit, then leave (SIGTERM / SIGINT)."""
        self._stop = True

    def run(self, install_signals: bool = True) -> IngestResult:
        if install_signals:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        ensure_topics(self.bootstrap, self.config.topics, self.config.partitions)
        ingestor = Ingestor(self.engine)
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=self.bootstrap, group_id=self.config.group, max_poll_records=self.config.batch_size,
                session_timeout_ms=self.config.session_timeout_ms, heartbeat_interval_ms=self.config.heartbeat_interval_ms,
                fetch_max_wait_ms=self.config.fetch_max_wait_ms, **CONSUMER_SETTINGS,
            )
            producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", max_request_size=MAX_REQUEST_BYTES)
            consumer.subscribe([self.config.topics.transfers, self.config.topics.disclosures], listener=_Forget(self._stored))
        except KafkaError as exc:
            raise BrokerError(f"cannot reach Kafka at {self.bootstrap}: {exc}") from None
        try:
            with few_collections():  # polled records and batches are many short-lived objects
                self._loop(consumer, producer, ingestor)
        except KafkaError as exc:
            # the batch in hand was rolled back (or committed with its offsets): nothing is lost
            raise BrokerError(f"Kafka failed: {exc.__class__.__name__}: {exc}") from None
        finally:
            producer.close()
            consumer.close(autocommit=False)
        _log_line("stopped", **self.totals.model_dump(), peak_rss_mb=peak_rss_mb())
        return self.totals

    def _loop(self, consumer: KafkaConsumer, producer: KafkaProducer, ingestor: Ingestor) -> None:
        idle_since = time.monotonic()
        seen = 0
        while not self._stop:
            limit = self.config.batch_size if self.config.max_events is None else min(self.config.batch_size, self.config.max_events - seen)
            batch = self._collect(consumer, limit)
            if not batch:
                if not consumer.assignment():
                    idle_since = time.monotonic()  # still joining the group: not idle yet
                    continue
                if self.config.stop_when_idle is not None and time.monotonic() - idle_since >= self.config.stop_when_idle:
                    break
                continue
            idle_since = time.monotonic()
            self._apply(consumer, producer, ingestor, batch)
            seen += len(batch)
            if seen // FULL_COLLECTION_EVERY > (seen - len(batch)) // FULL_COLLECTION_EVERY:
                gc.collect()
            if self.config.max_events is not None and seen >= self.config.max_events:
                break

    def _collect(self, consumer: KafkaConsumer, limit: int) -> list[Any]:
        """Poll until the batch is full or its time is up; drop records the store already holds."""
        batch: list[Any] = []
        deadline = time.monotonic() + self.config.batch_seconds
        while len(batch) < limit and not self._stop:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            polled = consumer.poll(timeout_ms=int(remaining * 1000), max_records=limit - len(batch))
            for tp, records in polled.items():
                floor = self._floor(tp)
                batch.extend(r for r in records if r.offset >= floor)
        return batch

    def _floor(self, tp: TopicPartition) -> int:
        """The next offset the store has applied for ``tp`` (read once per assignment)."""
        if tp not in self._stored:
            with self.engine.connect() as conn:
                stored = conn.execute(sa.select(table(ConsumerOffset).c.next_offset).where(
                    table(ConsumerOffset).c.group_id == self.config.group, table(ConsumerOffset).c.topic == tp.topic,
                    table(ConsumerOffset).c.partition == tp.partition)).scalar()
            self._stored[tp] = stored or 0
        return self._stored[tp]

    def _apply(self, consumer: KafkaConsumer, producer: KafkaProducer, ingestor: Ingestor, batch: list[Any]) -> None:
        started = time.monotonic()
        records = [RawRecord(value=m.value, headers=list(m.headers or ()), topic=m.topic, partition=m.partition, offset=m.offset)
                   for m in batch]
        nexts: dict[TopicPartition, int] = {}
        for m in batch:
            tp = TopicPartition(m.topic, m.partition)
            nexts[tp] = max(nexts.get(tp, 0), m.offset + 1)
        offsets = [(self.config.group, tp.topic, tp.partition, n) for tp, n in sorted(nexts.items())]
        keys = {(m.topic, m.partition, m.offset): m.key for m in batch}
        outcome = ingestor.write(*ingestor.decode(records), offsets=offsets,
                                 before_commit=lambda o: self._dead_letter(producer, o, keys))
        self._stored.update(nexts)
        self.totals.add(outcome.result)
        try:
            consumer.commit({tp: OffsetAndMetadata(n, "", -1) for tp, n in nexts.items()})
        except (CommitFailedError, KafkaError) as exc:
            # The store already holds the batch and its offsets: a redelivery is skipped by them.
            log.warning("offset commit failed after the store committed: %s", exc)
        _log_line("batch", records=len(batch), **outcome.result.model_dump(), ms=round((time.monotonic() - started) * 1000),
                  peak_rss_mb=peak_rss_mb())

    def _dead_letter(self, producer: KafkaProducer, outcome: BatchOutcome, keys: dict[tuple[Any, ...], Any]) -> None:
        """Forward refused records with the contract's headers; wait for the broker's ack."""
        futures = [producer.send(self.config.topics.dead_letter, key=keys.get((d.record.topic, d.record.partition, d.record.offset)),
                                 value=d.record.value, headers=_dlq_headers(d)) for d in outcome.dead]
        for future in futures:
            future.get(timeout=30)


class _Forget(ConsumerRebalanceListener):
    """On any rebalance, forget the cached store offsets: another member may have moved them.
    (Runs on kafka-python's network thread, so it only clears a dict.)"""

    def __init__(self, cache: dict[TopicPartition, int]) -> None:
        self.cache = cache

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.cache.clear()

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.cache.clear()


def _dlq_headers(dead: DeadRecord) -> list[tuple[str, bytes]]:
    r = dead.record
    return [*(r.headers or ()), ("dlq_reason", dead.reason.encode()), ("dlq_detail", dead.detail[:1000].encode()),
            ("dlq_topic", (r.topic or "").encode()), ("dlq_partition", str(r.partition).encode()),
            ("dlq_offset", str(r.offset).encode())]


def peak_rss_mb() -> int:
    """This process's peak resident memory since it started. Linux's VmHWM, because getrusage's
    maxrss carries over across exec: a worker started from a large process would report that
    process's size."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def _log_line(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), file=sys.stderr, flush=True)

