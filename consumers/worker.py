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
import os
import resource
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from kafka import ConsumerRebalanceListener, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import CommitFailedError, CorruptRecordError, KafkaError, UnsupportedCodecError
from kafka.structs import MemberState, OffsetAndMetadata
from sqlalchemy.engine import Engine

from consumers.forwarder import DeadLetterForwarder
from consumers.offsets import AppliedOffsets, StopConditions
from registry.exceptions import BrokerError, StoreError, UndecodableBatchError
from registry.intake.ingest import Ingestor, IngestResult, few_collections
from registry.intake.retention import HourlyRetention
from registry.model.events import RawRecord
from registry.stream import jsonlog, metrics
from registry.stream.kafka import MAX_REQUEST_BYTES, Topics, bootstrap_servers, ensure_topics
from registry.stream.lag import (Partition, adopt_topic_id, fingerprint, group_lag, offsets_ahead, rewind_stored,
                                 stored_last_records, stored_offsets, stored_topic_ids)
from registry.model.retry import Outage, is_broker_outage, is_db_outage
from registry.stream.status import BrokerOffsets, list_offsets

__all__ = ["WorkerConfig", "Worker", "Stopped", "EXIT_UNFINISHED"]

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

# After SIGTERM/SIGINT (contract §3: the worker ends within 10 s, whatever it waits on): a join in
# flight may finish until SETTLE_SECONDS, closing the clients takes at most CLOSE_SECONDS each,
# and if anything still blocks (a broker call that ignores its timeout) the process exits at
# FORCE_SECONDS: the open transaction, if any, rolls back and its offsets stay uncommitted.
SETTLE_SECONDS = 5.0
CLOSE_SECONDS = 1.5
FORCE_SECONDS = 9.0
# --stop-when-idle S: a worker still joining at S waits this much longer for its join (closing
# mid-join leaves the test broker's group stuck for the next member), then stops anyway.
IDLE_JOIN_GRACE = 4.0
# The exit code of a stop that did not finish cleanly: the watchdog forced it, or it ended an
# outage retry (the batch in hand was dropped uncommitted). EX_TEMPFAIL: run it again.
EXIT_UNFINISHED = 75
# SQLite's busy wait runs in C: no signal handler runs during it, so a SIGTERM would wait out the
# store's 30 s busy timeout. The worker's connections wait 2 s at a time instead; a lock held
# longer is retried as an outage, whose backoff a stop ends at once.
SQLITE_BUSY_MS = 2000


class Stopped(Exception):
    """A stop was asked while the worker waited out an outage: the batch in hand is dropped
    uncommitted (it is read again by whoever holds its partitions next)."""


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
    # Kafka's pre-3.0 default. The test broker's first join takes about half the session timeout
    # (measured: ~23 s at 45 s, ~5 s at 10 s), and a killed member holds its partitions this long.
    session_timeout_ms: int = 10000
    heartbeat_interval_ms: int = 3000
    # How long the broker may hold a fetch. Kafka's 500 ms default let the test broker (tansu)
    # hold fetches with data ready: measured, consume and a bare loop alike stalled ~500 ms now
    # and then, a third to two thirds of their time. 50 ms costs an idle worker 20 fetches/s.
    fetch_max_wait_ms: int = 50
    outage_timeout: float = 300.0  # broker or database unavailable this long: exit non-zero
    metrics_port: int | None = None
    lag_every: float = 5.0  # seconds between group-lag checks while busy (the gauge); every idle loop once idle
    # False: ignore the broker's topic ids (as on a broker that reports none; tests of the fallback)
    topic_ids: bool = True


class Worker:
    def __init__(self, engine: Engine, config: WorkerConfig) -> None:
        self.engine, self.config = engine, config
        self.bootstrap = bootstrap_servers(config.bootstrap)
        self.totals = IngestResult()
        self._stop = False
        self.offsets = AppliedOffsets.of_store(engine, config.group)
        self.stops = StopConditions(config.stop_when_idle, config.max_events)
        self._stop_event = threading.Event()
        self._signals = False
        self._stop_asked: float | None = None
        self.outage = Outage(config.outage_timeout, lambda e: is_db_outage(e) or is_broker_outage(e), sleep=self._pause)
        self._batch: list[Any] = []  # records in hand: kept across retries of an outage
        self._polled: list[tuple[TopicPartition, list[Any]]] = []  # polled, not yet checked against the store
        self._last_lag = 0.0
        self._applied = 0
        self._applied_now = False
        self.membership = _Membership(self.offsets)
        self._probe: KafkaConsumer | None = None  # reads single records to check a stored offset's last record
        self.exit_code = 0  # EXIT_UNFINISHED after a stop that ended an outage retry
        self.report: Any = None  # called with the totals before a forced exit (the CLI prints them)
        if engine.dialect.name == "sqlite" and not sa.event.contains(engine, "checkout", _short_busy_wait):
            sa.event.listen(engine, "checkout", _short_busy_wait)
        # contract §6: the manifest's registry_retention, applied at the start and then hourly
        self.retention = HourlyRetention(engine)

    def stop(self, *_: Any) -> None:
        """Finish the batch in hand, commit, then leave (SIGTERM / SIGINT). A wait for an outage
        ends at once (``Stopped``); a process started with signals exits at FORCE_SECONDS at the
        latest."""
        if self._stop_asked is None:
            self._stop_asked = time.monotonic()
            if self._signals:
                watchdog = threading.Timer(FORCE_SECONDS, self._force_exit)
                watchdog.daemon = True
                watchdog.start()
        self._stop = True
        self._stop_event.set()

    def _force_exit(self) -> None:
        """The stop took longer than the contract allows: leave now with the totals as known (the
        database rolls back what was not committed; nothing committed is lost)."""
        log.warning("forced_stop", extra={"fields": {**self.totals.model_dump(), "after_s": FORCE_SECONDS}})
        try:
            if self.report is not None:
                self.report(self.totals)
        finally:
            for handler in logging.getLogger("registry").handlers:
                handler.flush()
            sys.stdout.flush()
            os._exit(EXIT_UNFINISHED)

    def _pause(self, seconds: float) -> None:
        """The outage backoff, cut short by a stop."""
        if self._stop_event.wait(seconds):
            raise Stopped()

    def run(self, install_signals: bool = True) -> IngestResult:
        if install_signals:
            self._signals = True
            signal.signal(signal.SIGTERM, self.stop)
            signal.signal(signal.SIGINT, self.stop)
        jsonlog.setup()
        if self._stop:  # asked while the process was starting: nothing started, nothing to finish
            log.info("stopped", extra={"fields": {**self.totals.model_dump(), "detail": "stop asked before the start"}})
            return self.totals
        if self.config.metrics_port is not None:
            metrics.serve(self.config.metrics_port)
        try:
            self.outage.call(lambda: ensure_topics(self.bootstrap, self.config.topics, self.config.partitions), "broker")
            ingestor = self.outage.call(lambda: Ingestor(self.engine), "database")
            consumer, producer = self.outage.call(self._clients, "broker")
            forwarder = DeadLetterForwarder(producer, self.config.topics.dead_letter)
            clean = False
            try:
                with few_collections():  # polled records and batches are many short-lived objects
                    self._loop(consumer, forwarder, ingestor)
                clean = True
            except Stopped:
                log.info("stopped_waiting", extra={"fields": {"detail": "a stop ended an outage retry; the batch in hand was not committed"}})
                self.exit_code = EXIT_UNFINISHED
                clean = True
            finally:
                if clean:
                    self._settle(consumer)
                producer.close(timeout=CLOSE_SECONDS)
                consumer.close(autocommit=False, timeout_ms=int(CLOSE_SECONDS * 1000))
                if self._probe is not None:
                    self._probe.close(autocommit=False, timeout_ms=int(CLOSE_SECONDS * 1000))
        except Stopped:
            log.info("stopped_waiting", extra={"fields": {"detail": "stopped before the clients were ready"}})
            self.exit_code = EXIT_UNFINISHED
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
            # Also the rebalance timeout: how long the broker waits for members to rejoin before a
            # new one gets partitions. A batch held through a longer database outage costs the
            # membership (its commit fails; the offsets in the store keep the redelivery out).
            max_poll_interval_ms=max(30_000, 3 * self.config.session_timeout_ms), **CONSUMER_SETTINGS, **RECONNECT,
        )
        producer = KafkaProducer(bootstrap_servers=self.bootstrap, acks="all", max_request_size=MAX_REQUEST_BYTES, **RECONNECT)
        self.membership.began()
        log.info("subscribed", extra={"fields": {"group": self.config.group, "session_timeout_ms": self.config.session_timeout_ms}})
        consumer.subscribe([self.config.topics.transfers, self.config.topics.disclosures], listener=self.membership)
        return consumer, producer

    def _loop(self, consumer: KafkaConsumer, forwarder: DeadLetterForwarder, ingestor: Ingestor) -> None:
        while not self._stop:
            self.retention.maybe_apply()  # at most once an hour; never raises
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
                lag = self._group_lag(consumer)
                if idle and self.stops.should_stop(lag) and (_stable(consumer) or self.stops.idle(IDLE_JOIN_GRACE)):
                    break
            self.membership.note_wait(consumer)

    def _collect(self, consumer: KafkaConsumer, limit: int) -> None:
        """Poll until the batch is full or its time is up; drop records the store already holds.
        Records stay in ``_polled``/``_batch`` if reading the store's offsets fails."""
        deadline = time.monotonic() + self.config.batch_seconds
        while len(self._batch) < limit and not self._stop:
            if not self._polled:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    polled = consumer.poll(timeout_ms=int(remaining * 1000), max_records=limit - len(self._batch))
                except (UnsupportedCodecError, CorruptRecordError, UnicodeDecodeError) as exc:
                    # not an outage: the same batch comes back on every retry (a silent stall).
                    # UnicodeDecodeError: kafka-python decodes header *names* as UTF-8 while parsing
                    raise UndecodableBatchError(
                        f"cannot decode a fetched record batch: {exc.__class__.__name__}: {exc} (the worker reads gzip, "
                        "snappy, lz4 and zstd with the packages python-snappy, lz4 and zstandard installed)") from None
                self._polled = list(polled.items())
            fresh = {(tp.topic, tp.partition) for tp, _ in self._polled} - self.offsets.known().keys()
            if fresh:
                # newly assigned: check first that the stored offsets belong to this log (a
                # re-created topic is read from its start), before any of its records counts as applied
                self._group_lag(consumer)
                for p in fresh:
                    self.offsets.floor(p)
            while self._polled:
                tp, records = self._polled[0]
                self._batch.extend(self.offsets.fresh((tp.topic, tp.partition), records))
                self._polled.pop(0)

    def _group_lag(self, consumer: KafkaConsumer) -> int | None:
        """The group's total lag (store offsets vs end offsets); None while either side does not
        answer (such a failure counts toward the outage timeout). Partitions of a re-created topic
        (its id differs from the one stored with the offsets) and partitions whose log ends below
        the offsets held for them are read again from their start first."""
        self._last_lag = time.monotonic()
        topics = [self.config.topics.transfers, self.config.topics.disclosures]
        try:
            # Offsets first, then the broker's ends: ends only grow unless the log was lost, so an
            # offset read before them and past them is a real sign. (The other way round, another
            # member applying records meanwhile looked like a re-created topic.)
            stored = stored_offsets(self.engine, self.config.group)
            stored_ids = stored_topic_ids(self.engine, self.config.group)
            lasts = stored_last_records(self.engine, self.config.group)  # with the offsets: one snapshot
            cached = self.offsets.known()
            broker, ids = _broker_offsets(consumer, topics)
            if not self.config.topic_ids:
                ids = dict.fromkeys(ids)
            held = {p: max(stored.get(p, 0), cached.get(p, 0)) for p in stored.keys() | cached.keys()}
            ahead = offsets_ahead(held, broker.ends, broker.confirmed)
            for p, known in stored_ids.items():
                if known is not None and ids.get(p[0]) not in (None, known) and p in broker.ends:
                    ahead[p] = held.get(p, stored[p])  # re-created: whatever its length
            # Only the member holding a partition rewinds it (its cached floor alone decides what is
            # skipped); another one's counts as lag from the log start until its owner does.
            mine = {(tp.topic, tp.partition) for tp in consumer.assignment()}
            self._check_last_records(mine, stored, (stored_ids, lasts), ids, broker, ahead, held)
            rewind = {p: n for p, n in ahead.items() if p in mine}
            if rewind:
                self._read_again(consumer, rewind, stored, broker, ids)
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

    def _check_last_records(self, mine: set[Partition], stored: dict[Partition, int],
                            known: tuple[dict[Partition, str | None], dict[Partition, str | None]],
                            ids: dict[str, str | None], broker: BrokerOffsets, ahead: dict[Partition, int],
                            held: dict[Partition, int]) -> None:
        """Where no topic id can be compared (the broker reports none, or the row has none: stored
        before ids were kept), the contract's fallback: the record now at the stored offset minus
        one must be the one applied last (its fingerprint is stored with the offset). A different
        record, none where one should be, or a log that starts past the stored offset: the topic
        was re-created (``ahead``: read again from its start). A row gets the broker's id only
        once verified, never blindly."""
        stored_ids, lasts = known  # the stored rows' topic ids and last records, read with ``stored``
        needed = [p for p in sorted(mine) if p in stored and p not in ahead and p in broker.ends
                  and (ids.get(p[0]) is None or stored_ids.get(p) is None)]
        for p in needed:
            offset, topic_id = stored[p], ids.get(p[0])
            same = True if offset == 0 else self._same_record(p, offset, lasts.get(p), broker.starts.get(p, 0))
            if same is False:
                ahead[p] = held.get(p, offset)
            elif same is True and topic_id is not None:
                adopt_topic_id(self.engine, self.config.group, p, topic_id, offset)

    def _same_record(self, p: Partition, offset: int, last: str | None, start: int) -> bool | None:
        """Whether the record at ``offset - 1`` is the one applied last (None: not known now)."""
        if start > offset:
            return False  # the log starts past what was applied: not the log it was read from
        if start == offset:
            return True  # retention removed the record: nothing below the offset to read again anyway
        if last is None:
            return False  # offsets stored before fingerprints: not verifiable; a re-read costs duplicates only
        if self._probe is None:
            self._probe = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                        fetch_max_wait_ms=self.config.fetch_max_wait_ms, max_partition_fetch_bytes=MAX_REQUEST_BYTES,
                                        **RECONNECT)
        tp = TopicPartition(*p)
        self._probe.assign([tp])
        self._probe.seek(tp, offset - 1)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and not self._stop:
            for record in self._probe.poll(timeout_ms=500, max_records=1).get(tp, []):
                if record.offset == offset - 1:
                    return fingerprint(record) == last
                if record.offset > offset - 1:
                    return False  # compacted away or never there: not the log that was read
        return None

    def _read_again(self, consumer: KafkaConsumer, ahead: dict[Partition, int], stored: dict[Partition, int],
                    broker: BrokerOffsets, ids: dict[str, str | None]) -> None:
        """The topic was deleted and re-created, or the broker lost its log: every record below
        the offsets held for these partitions of ours would be skipped as applied. Rewind the
        stored offset to the log start (unless it moved meanwhile) with the topic's new id, forget
        the cached floor and seek there; the ``(source, id)`` dedupe absorbs what is read twice."""
        for p, held in ahead.items():
            start, end = broker.starts.get(p, 0), broker.ends[p]
            log.warning("offsets_reset", extra={"fields": {"topic": p[0], "partition": p[1], "stored_offset": held,
                                                           "end_offset": end, "reset_to": start, "topic_id": ids.get(p[0])}})
            if p in stored:
                rewind_stored(self.engine, self.config.group, p, stored[p], start, ids.get(p[0]))
            self.offsets.forget(p)
            consumer.seek(TopicPartition(*p), max(start, self.offsets.floor(p)))
        self._polled = [(tp, records) for tp, records in self._polled if (tp.topic, tp.partition) not in ahead]

    def _settle(self, consumer: KafkaConsumer) -> None:
        """Before closing: let a join in flight finish (bounded), so that the member leaves the
        group instead of vanishing mid-join (the test broker then kept the group waiting for it:
        the next member received nothing for minutes). Records polled meanwhile are not applied
        (nor committed): the next holder of their partitions reads them."""
        until = (self._stop_asked or time.monotonic()) + SETTLE_SECONDS
        if _mid_join(consumer):
            consumer.pause(*consumer.assignment())
        while _mid_join(consumer) and time.monotonic() < until:
            consumer.poll(timeout_ms=200)
            consumer.pause(*consumer.assignment())

    def _apply(self, consumer: KafkaConsumer, forwarder: DeadLetterForwarder, ingestor: Ingestor) -> None:
        batch = self._batch
        started = time.monotonic()
        records = [RawRecord(value=m.value, headers=list(m.headers or ()), topic=m.topic, partition=m.partition, offset=m.offset)
                   for m in batch]
        nexts = AppliedOffsets.nexts(batch)
        lasts = {(m.topic, m.partition): m for m in batch if m.offset + 1 == nexts[(m.topic, m.partition)]}
        offsets = [(self.config.group, topic, partition, n, fingerprint(lasts[(topic, partition)]))
                   for (topic, partition), n in sorted(nexts.items())]
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


class _Membership(ConsumerRebalanceListener):
    """On any rebalance, forget the cached store offsets: another member may have moved them; and
    log how long each join took (``joined``, ``join_s``) and, every 10 s, a join still waiting.
    (Callbacks run on kafka-python's network thread, so they only touch memory and the log.)"""

    def __init__(self, offsets: AppliedOffsets) -> None:
        self.offsets = offsets
        self._since: float | None = None
        self._told = 0.0

    def began(self) -> None:
        self._since = self._told = time.monotonic()

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.offsets.forget()
        self.began()

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.offsets.forget()
        waited = round(time.monotonic() - self._since, 1) if self._since is not None else None
        self._since = None
        log.info("joined", extra={"fields": {"partitions": len(assigned), "join_s": waited}})

    def note_wait(self, consumer: KafkaConsumer) -> None:
        if self._since is not None and time.monotonic() - self._told >= 10 and not _stable(consumer):
            self._told = time.monotonic()
            log.info("joining", extra={"fields": {"waited_s": round(self._told - self._since, 1)}})


def _coordinator_state(consumer: KafkaConsumer) -> str | None:
    return getattr(getattr(consumer, "_coordinator", None), "state", None)


def _stable(consumer: KafkaConsumer) -> bool:
    """The member holds its assignment (kafka-python's coordinator state; unknown counts as yes)."""
    state = _coordinator_state(consumer)
    return state is None or state == MemberState.STABLE


def _mid_join(consumer: KafkaConsumer) -> bool:
    return _coordinator_state(consumer) == MemberState.REBALANCING


def _broker_offsets(consumer: KafkaConsumer, topics: list[str]) -> tuple[BrokerOffsets, dict[str, str | None]]:
    """End and log start offsets asked of the broker (ListOffsets: no record is read, no second
    consumer), and each topic's id where the broker reports one (Metadata v10+, Kafka 2.8+; the
    test broker does too). Ends of our own partitions are raised to the high watermark our own
    fetches saw: tansu 0.6.0 answers ListOffsets with the last batch's base offset + 1 (measured:
    500 records in one batch moved the end by 1). Only ends known exactly count as confirmed
    (what a log that ends below the stored offset is judged by): a high watermark, or an empty log."""
    partitions, ends, starts = list_offsets(consumer, topics)
    mine = consumer.assignment()
    confirmed = set()
    for tp in partitions:
        seen = consumer.highwater(tp) if tp in mine else None
        if seen is not None:
            ends[tp] = max(ends.get(tp, 0), int(seen))
            confirmed.add((tp.topic, tp.partition))
        elif ends.get(tp, 0) == 0:
            confirmed.add((tp.topic, tp.partition))
    cluster = getattr(getattr(consumer, "_client", None), "cluster", None)
    ids = {}
    for topic in topics:
        topic_id = cluster.topic_id(topic) if cluster is not None and hasattr(cluster, "topic_id") else None
        ids[topic] = str(topic_id) if topic_id is not None and topic_id.int != 0 else None
    return BrokerOffsets(ends={(tp.topic, tp.partition): n for tp, n in sorted(ends.items())},
                         starts={(tp.topic, tp.partition): n for tp, n in sorted(starts.items())},
                         confirmed=frozenset(confirmed)), ids


def _short_busy_wait(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    cursor.close()


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
