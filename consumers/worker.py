"""The Kafka worker behind ``registry consume``: a consumer-group member that reads raw bytes
from the transfers and disclosures topics and applies them through the one ingest path.

Per batch (bounded by size and time): decode → the records decoding refused forwarded to the
dead-letter topic and acknowledged → write in one DB transaction, with the next offsets stored in
that same transaction (what only the database refuses is forwarded inside it, before the commit;
``forwarder.py``) → offsets committed to Kafka. A crash anywhere re-delivers at most the batch in
flight; the store's ``(source, id)`` dedupe and the offsets kept in the database make each event
count once."""

from __future__ import annotations

import gc
import logging
import resource
import signal
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, KafkaError
from kafka.structs import OffsetAndMetadata
from sqlalchemy.engine import Engine

from consumers.forwarder import DeadLetterForwarder
from consumers.offsets import AppliedOffsets, StopConditions
from registry.exceptions import BrokerError, StoreError
from registry.intake.ingest import Ingestor, IngestResult, few_collections
from registry.model.events import RawRecord
from registry.stream import jsonlog, metrics
from registry.stream.kafka import MAX_REQUEST_BYTES, Topics, bootstrap_servers, ensure_topics
from registry.stream.lag import Partition, group_lag, offsets_ahead, rewind_stored, stored_offsets
from registry.model.retry import Outage, is_broker_outage, is_db_outage
from registry.stream.status import BrokerOffsets, EndOffsets

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

EMPTY_LAG_EVERY = 2.0  # seconds between lag checks while polls bring nothing (how a broker outage shows)
# After a broker outage, reconnect within 2 s of its end (the client's default backoff grows to 30 s);
# at start, give up a bootstrap attempt after 10 s (default 30 s) so --outage-timeout stays close.
RECONNECT: dict[str, Any] = {"reconnect_backoff_max_ms": 2000, "bootstrap_timeout_ms": 10_000}


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
    outage_timeout: float = 300.0  # broker or database unavailable this long: exit non-zero
    metrics_port: int | None = None
    lag_every: float = 5.0  # seconds between group-lag checks while busy (the gauge); every idle loop once idle


class Worker:
    def __init__(self, engine: Engine, config: WorkerConfig) -> None:
        self.engine, self.config = engine, config
        self.bootstrap = bootstrap_servers(config.bootstrap)
        self.totals = IngestResult()
        self._stop = False
        self.offsets = AppliedOffsets.of_store(engine, config.group)
        self.stops = StopConditions(config.stop_when_idle, config.max_events)
        self.outage = Outage(config.outage_timeout, lambda e: is_db_outage(e) or is_broker_outage(e))
        self._batch: list[Any] = []  # records in hand: kept across retries of an outage
        self._polled: list[tuple[TopicPartition, list[Any]]] = []  # polled, not yet checked against the store
        self._last_lag = 0.0
        self._applied = 0
        self._applied_now = False
        self._ends = EndOffsets(self.bootstrap)

    def stop(self, *_: Any) -> None:
        """Finish the batch in hand, commit, then leave (SIGTERM / SIGINT)."""
        self._stop = True

    def run(self, install_signals: bool = True) -> IngestResult:
        if install_signals:
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        jsonlog.setup()
        if self.config.metrics_port is not None:
            metrics.serve(self.config.metrics_port)
        try:
            self.outage.call(lambda: ensure_topics(self.bootstrap, self.config.topics, self.config.partitions), "broker")
            ingestor = self.outage.call(lambda: Ingestor(self.engine), "database")
            consumer, producer = self.outage.call(self._clients, "broker")
            forwarder = DeadLetterForwarder(producer, self.config.topics.dead_letter)
            try:
                with few_collections():  # polled records and batches are many short-lived objects
                    self._loop(consumer, forwarder, ingestor)
            finally:
                producer.close(timeout=5)
                consumer.close(autocommit=False)
                self._ends.close()
        except KafkaError as exc:
            # the batch in hand was rolled back (or committed with its offsets): nothing is lost
            raise BrokerError(f"Kafka failed: {exc.__class__.__name__}: {exc}") from None
        except sa.exc.DBAPIError as exc:
            raise StoreError(f"the database failed: {exc.__class__.__name__}: {str(exc.orig or exc).splitlines()[0]}") from None
        log.info("stopped", extra={"fields": {**self.totals.model_dump(), "peak_rss_mb": peak_rss_mb()}})
        return self.totals

    def _clients(self) -> tuple[KafkaConsumer, KafkaProducer]:
        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=self.config.group, max_poll_records=self.config.batch_size,
            session_timeout_ms=self.config.session_timeout_ms, heartbeat_interval_ms=self.config.heartbeat_interval_ms,
            fetch_max_wait_ms=self.config.fetch_max_wait_ms,
            # a batch held through a database outage must not cost the membership
            max_poll_interval_ms=int(max(300, self.config.outage_timeout + 60) * 1000), **CONSUMER_SETTINGS, **RECONNECT,
        )
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", max_request_size=MAX_REQUEST_BYTES, **RECONNECT)
        consumer.subscribe([self.config.topics.transfers, self.config.topics.disclosures], listener=_Forget(self.offsets))
        return consumer, producer

    def _loop(self, consumer: KafkaConsumer, forwarder: DeadLetterForwarder, ingestor: Ingestor) -> None:
        while not self._stop:
            room = self.stops.room(self.config.batch_size)
            self.outage.call(lambda: self._collect(consumer, room), "database", proves=False)
            self._applied_now = bool(self._batch)
            if self._batch:
                self.outage.call(lambda: self._apply(consumer, forwarder, ingestor), "write")
                if self.stops.seen // FULL_COLLECTION_EVERY > (self.stops.seen - self._applied) // FULL_COLLECTION_EVERY:
                    gc.collect()
                if self.stops.reached_max():
                    break
            idle = self.stops.idle()
            since = time.monotonic() - self._last_lag
            # busy: every lag_every; nothing polled (idle, or the broker gone): every 2 s
            if idle or since >= self.config.lag_every or (not self._applied_now and since >= EMPTY_LAG_EVERY):
                if self.stops.should_stop(self._group_lag(consumer)) and idle:
                    break

    def _collect(self, consumer: KafkaConsumer, limit: int) -> None:
        """Poll until the batch is full or its time is up; drop records the store already holds.
        Records stay in ``_polled``/``_batch`` if reading the store's offsets fails."""
        deadline = time.monotonic() + self.config.batch_seconds
        while len(self._batch) < limit and not self._stop:
            if not self._polled:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                polled = consumer.poll(timeout_ms=int(remaining * 1000), max_records=limit - len(self._batch))
                self._polled = list(polled.items())
            while self._polled:
                tp, records = self._polled[0]
                self._batch.extend(self.offsets.fresh((tp.topic, tp.partition), records))
                self._polled.pop(0)

    def _group_lag(self, consumer: KafkaConsumer) -> int | None:
        """The group's total lag (store offsets vs end offsets); None while either side does not
        answer (such a failure counts toward the outage timeout). Partitions whose log ends below
        the offsets held for them are read again from their start first."""
        self._last_lag = time.monotonic()
        try:
            # Offsets first, then the broker's ends: ends only grow unless the log was lost, so an
            # offset read before them and past them is a real sign. (The other way round, another
            # member applying records meanwhile looked like a re-created topic.)
            stored = stored_offsets(self.engine, self.config.group)
            cached = self.offsets.known()
            broker = self._ends.read([self.config.topics.transfers, self.config.topics.disclosures])
            held = {p: max(stored.get(p, 0), cached.get(p, 0)) for p in stored.keys() | cached.keys()}
            ahead = offsets_ahead(held, broker.ends, broker.confirmed)
            # Only the member holding a partition rewinds it (its cached floor alone decides what is
            # skipped); another one's counts as lag from the log start until its owner does.
            mine = {(tp.topic, tp.partition) for tp in consumer.assignment()}
            rewind = {p: n for p, n in ahead.items() if p in mine}
            if rewind:
                self._read_again(consumer, rewind, stored, broker)
                stored = stored_offsets(self.engine, self.config.group)
            lags = group_lag({**stored, **{p: broker.starts.get(p, 0) for p in ahead if p not in rewind}}, broker.ends)
        except Exception as exc:
            if not self.outage.retryable(exc):
                raise
            self.outage.failed(exc, "lag")
            return None
        self.outage.ok()
        metrics.set_lag(lags)
        return sum(lags.values())

    def _read_again(self, consumer: KafkaConsumer, ahead: dict[Partition, int], stored: dict[Partition, int],
                    broker: BrokerOffsets) -> None:
        """The topic was deleted and re-created, or the broker lost its log: the offsets held for
        these partitions of ours are past its end, and every record below them would be skipped as
        applied. Rewind the stored offset to the log start (unless it moved meanwhile), forget the
        cached floor and seek there; the ``(source, id)`` dedupe absorbs what is read twice."""
        for p, held in ahead.items():
            start, end = broker.starts.get(p, 0), broker.ends[p]
            log.warning("offsets_reset", extra={"fields": {"topic": p[0], "partition": p[1], "stored_offset": held,
                                                           "end_offset": end, "reset_to": start}})
            if stored.get(p, 0) > end:
                rewind_stored(self.engine, self.config.group, p, stored[p], start)
            self.offsets.forget(p)
            consumer.seek(TopicPartition(*p), max(start, self.offsets.floor(p)))
        self._polled = [(tp, records) for tp, records in self._polled if (tp.topic, tp.partition) not in ahead]

    def _apply(self, consumer: KafkaConsumer, forwarder: DeadLetterForwarder, ingestor: Ingestor) -> None:
        batch = self._batch
        started = time.monotonic()
        records = [RawRecord(value=m.value, headers=list(m.headers or ()), topic=m.topic, partition=m.partition, offset=m.offset)
                   for m in batch]
        nexts = AppliedOffsets.nexts(batch)
        offsets = [(self.config.group, topic, partition, n) for (topic, partition), n in sorted(nexts.items())]
        keys = {(m.topic, m.partition, m.offset): m.key for m in batch}
        decoded, refused = ingestor.decode(records)
        forwarder.forward(refused, keys)  # no transaction open yet: waiting for the acks holds no lock
        outcome = ingestor.write(decoded, refused, offsets=offsets, before_commit=lambda o: forwarder.forward(o.dead, keys))
        # committed: from here on nothing may send the batch round again
        self._batch, self._applied = [], len(batch)
        forwarder.committed()
        self.offsets.advance(nexts)
        self.totals.add(outcome.result)
        self.stops.records(len(batch))
        seconds = time.monotonic() - started
        metrics.observe_batch(outcome.result, [d.reason for d in outcome.dead], seconds)
        try:
            consumer.commit({TopicPartition(t, p): OffsetAndMetadata(n, "", -1) for (t, p), n in nexts.items()}, timeout_ms=5000)
        except (CommitFailedError, KafkaError) as exc:
            # The store already holds the batch and its offsets: a redelivery is skipped by them.
            log.warning("commit_failed", extra={"fields": {"error": f"{exc.__class__.__name__}: {exc}"}})
        log.info("batch", extra={"fields": {"records": len(batch), **outcome.result.model_dump(), "ms": round(seconds * 1000),
                                            "peak_rss_mb": peak_rss_mb()}})


class _Forget(ConsumerRebalanceListener):
    """On any rebalance, forget the cached store offsets: another member may have moved them.
    (Runs on kafka-python's network thread, so it only clears a dict.)"""

    def __init__(self, offsets: AppliedOffsets) -> None:
        self.offsets = offsets

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.offsets.forget()

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.offsets.forget()


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
