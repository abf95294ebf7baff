"""The one ingest path behind every entry point (file, Kafka worker, HTTP, dead-letter replay):
decode → validate → dedupe by ``(source, id)`` → aggregate → one transaction per batch."""

from __future__ import annotations

import gc
import hashlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Iterator, Sequence

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection, Engine

from registry.exceptions import EventError
from registry.ledger import anchor_path
from registry.model.declarations import newest_declared
from registry.model.manifest import RegistryRetention
from registry.model.partitions import ensure_partitions, forget_partitions
from registry.model.retention import horizon, purged_before
from registry.model.events import DISCLOSURE, TRANSFER, Event, EventValidator, RawRecord, lines_of, stored_copy
from registry.model.tables import ManifestVersion
from registry.model.subjects import mask_text
from registry.model import retry

from . import dedupe
from .aggregates import aggregate
from .writes import Bulk, bulk_for

__all__ = ["IngestResult", "DeadRecord", "BatchOutcome", "Ingestor", "ingest_records", "lines_of"]


class IngestResult(BaseModel):
    ingested: int = 0
    duplicates: int = 0
    dead_lettered: int = 0

    def add(self, other: "IngestResult") -> None:
        self.ingested += other.ingested
        self.duplicates += other.duplicates
        self.dead_lettered += other.dead_lettered


@dataclass(frozen=True)
class DeadRecord:
    record: RawRecord
    reason: str
    detail: str


@dataclass
class BatchOutcome:
    result: IngestResult = field(default_factory=IngestResult)
    dead: list[DeadRecord] = field(default_factory=list)


@dataclass
class Plan:
    """What one batch writes, computed without the database (so another process can do it):
    event rows, the aggregates, ledger snapshots. Assumes its events are not yet stored; the
    writer checks that before using it."""

    keys: list[tuple[str, str]] = field(default_factory=list)
    event_rows: list[tuple[Any, ...]] = field(default_factory=list)
    day_rows: list[tuple[Any, ...]] = field(default_factory=list)
    hour_rows: list[tuple[Any, ...]] = field(default_factory=list)
    subject_rows: list[tuple[Any, ...]] = field(default_factory=list)
    disclosures: list[tuple[datetime, dict[str, Any], str]] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)  # of the event rows: their month partitions


class Ingestor:
    """Holds the validator (taxonomy of the newest *declared* manifest, whatever its effective
    date: a back-dated or future-dated declaration adds its extensions at once) for a run of
    batches; a manifest declared meanwhile applies from the next batch on (one small query a batch)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._version: int | None = -1
        self.validator = EventValidator()
        self.retention: RegistryRetention | None = None
        self.purged_before: datetime | None = None
        self.refresh()

    def refresh(self) -> None:
        """Rebuild the validator if a newer manifest version was declared since the last batch,
        and re-read where retention removed events (another process may have run it)."""
        with self.engine.connect() as conn:
            self.purged_before = purged_before(conn, "events")
            version = conn.execute(sa.select(sa.func.max(ManifestVersion.c.version))).scalar()
            if version != self._version:
                manifest = newest_declared(conn)
                self.validator = EventValidator(manifest.taxonomy_view() if manifest else None)
                self.retention = manifest.registry_retention if manifest else None
                self._version = version

    def decode(self, records: Sequence[RawRecord]) -> tuple[list[tuple[RawRecord, Event]], list[DeadRecord]]:
        self.refresh()
        decoded: list[tuple[RawRecord, Event]] = []
        refused: list[DeadRecord] = []
        with few_collections():
            for record in records:
                try:
                    decoded.append((record, self.validator.decode(record)))
                except EventError as exc:
                    refused.append(DeadRecord(record, exc.reason, str(exc)))
                except Exception as exc:  # noqa: BLE001  a check that failed unforeseen must not stop the stream
                    refused.append(DeadRecord(record, "invalid_data", f"could not be validated ({type(exc).__name__})"))
        return self.refuse_too_old(decoded, refused), refused

    def refuse_too_old(self, decoded: list[tuple[RawRecord, Event]], refused: list[DeadRecord]) -> list[tuple[RawRecord, Event]]:
        """Contract §6: an event older than the events horizon could no longer be deduplicated
        (its original may have been removed), so it is refused as ``too_old``. The horizon is the
        later of the current manifest's and where retention already removed events: lengthening
        the period (or removing ``registry_retention``) does not bring removed originals back,
        so a redelivery of one would otherwise be counted a second time."""
        period = self.retention.events if self.retention is not None else None
        limits = [(self.purged_before, "where retention already removed events")] if self.purged_before else []
        if period is not None:
            limits.append((horizon("events", datetime.now(timezone.utc), period), f"the events retention period ({period})"))
        if not limits:
            return decoded
        oldest, why = max(limits, key=lambda limit: limit[0])
        kept = []
        for record, event in decoded:
            if event.time < oldest:
                refused.append(DeadRecord(record, "too_old", f"event time {event.time.isoformat()} is before the events retention "
                                                             f"horizon {oldest.isoformat()} ({why})"))
            else:
                kept.append((record, event))
        return kept

    def write(self, decoded: list[tuple[RawRecord, Event]], refused: list[DeadRecord],
              offsets: Sequence[tuple[Any, ...]] = (),
              before_commit: Callable[[BatchOutcome], None] | None = None) -> BatchOutcome:
        """Apply decoded events in one transaction. ``offsets`` (group, topic, partition,
        next_offset) are stored in the same transaction: effects and position commit together.
        ``before_commit`` runs inside it (the worker forwards there the dead letters only the
        database could find: if that fails, nothing of the batch is kept)."""
        isolate = coarse = False

        def transaction() -> BatchOutcome:
            with few_collections(), self.engine.begin() as conn:
                if coarse:
                    conn.execution_options(registry_coarse_claim=True)
                apply = apply_isolating if isolate else apply_batch
                outcome = apply(conn, decoded, list(refused), offsets)
                if before_commit is not None:
                    before_commit(outcome)
                return outcome

        for attempt in range(4):
            try:
                # month partitions (PostgreSQL) in a transaction of their own, before the batch's
                ensure_partitions(self.engine, [e.time for _, e in decoded])
                outcome = retry.on_conflict(transaction)  # deadlock / serialization failure: rerun with backoff
                _anchor_new_heads(self.engine)  # disclosure heads go to the anchor file only once committed
                return outcome
            except _REFUSED_BY_DATABASE:
                # Rare: redo the batch in a new transaction that sets the refused events apart.
                # (Not savepoints from the start: on SQLite a savepoint opens the transaction
                # with a read snapshot that cannot become a write while another worker writes.)
                if isolate:
                    raise
                isolate = True
            except sa.exc.OperationalError as exc:
                # the shared lock table was full (many writers at once): claim the key space whole
                if coarse or retry.sqlstate(exc) != dedupe.OUT_OF_LOCK_SLOTS:
                    raise
                coarse = True
            except sa.exc.IntegrityError:
                # Another worker inserted one of these events meanwhile (a rebalance overlap), or
                # retention in another process dropped a month partition this one thought was there: redo.
                forget_partitions(self.engine)
                if attempt == 3:
                    raise
        raise AssertionError("unreachable")

    def ingest_batch(self, records: Sequence[RawRecord], offsets: Sequence[tuple[Any, ...]] = ()) -> BatchOutcome:
        return self.write(*self.decode(records), offsets=offsets)

    def ingest(self, records: Iterable[RawRecord], batch_size: int = 5000,
               progress: Callable[[int], None] | None = None) -> IngestResult:
        # Measured here: a writer thread overlapping decode and SQL ran slower (GIL contention), and
        # planning batches in a worker process gained ~15% for a second process and a fallback
        # path; batches run one after the other.
        total = IngestResult()
        with few_collections():  # reading the input allocates as much as decoding it
            for batch in _batches(records, batch_size):
                total.add(self.ingest_batch(batch).result)
                if progress:
                    progress(len(batch))
        return total


def _batches(records: Iterable[RawRecord], size: int) -> Iterator[list[RawRecord]]:
    batch: list[RawRecord] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@contextmanager
def few_collections() -> Iterator[None]:
    """A batch allocates many small objects that all live until it commits: the cyclic collector
    would walk them again and again for nothing (measured: a third of the decode time, and half
    of an HTTP batch's time)."""
    old = gc.get_threshold()
    gc.set_threshold(max(old[0], 50_000), old[1], old[2])
    try:
        yield
    finally:
        gc.set_threshold(*old)


def ingest_records(engine: Engine, records: Iterable[RawRecord], batch_size: int = 5000) -> IngestResult:
    return Ingestor(engine).ingest(records, batch_size)


def plan_events(fresh: list[tuple[RawRecord, Event]], bulk: Bulk) -> Plan:
    events = [e for _, e in fresh]
    stamps = [bulk.time(e.time) for e in events]  # formatted once: strftime dominated the writes
    plan = Plan(keys=[(e.source, e.id) for e in events], times=[e.time for e in events],
                event_rows=[(e.source, e.id, e.type, stamp, e.data.get("recipient"), e.payload_hash, e.body.decode())
                            for e, stamp in zip(events, stamps)])
    # the aggregate shard is the Kafka partition: one owner at a time, so no two workers share a row
    plan.day_rows, plan.hour_rows, plan.subject_rows = aggregate(
        bulk, [(e, stamp, record.partition or 0) for (record, e), stamp in zip(fresh, stamps) if e.type == TRANSFER])
    plan.disclosures = [(e.time, e.data, e.source) for e in sorted((e for e in events if e.type == DISCLOSURE), key=lambda e: e.time)]
    return plan


def split_batch(decoded: list[tuple[RawRecord, Event]], known: dict[tuple[str, str], str]
                ) -> tuple[list[tuple[RawRecord, Event]], int, list[DeadRecord]]:
    """(fresh events, duplicates, conflicting duplicates) given the hashes ``known`` to the store
    (the batch's own earlier events count as known too)."""
    fresh: list[tuple[RawRecord, Event]] = []
    duplicates, conflicts = 0, []
    for record, event in decoded:
        key = (event.source, event.id)
        seen = known.get(key)
        if seen is None:
            known[key] = event.payload_hash
            fresh.append((record, event))
        elif seen == event.payload_hash:
            duplicates += 1
        else:
            conflicts.append(DeadRecord(record, "conflicting_duplicate",
                                        f"({event.source}, {event.id}) was already recorded with a different payload"))
    return fresh, duplicates, conflicts


def apply_batch(conn: Connection, decoded: list[tuple[RawRecord, Event]], dead: list[DeadRecord],
                offsets: Sequence[tuple[Any, ...]] = (), write_dead: bool = True) -> BatchOutcome:
    """Write one batch of decoded events inside the caller's transaction."""
    bulk = bulk_for(conn)
    keys = {(e.source, e.id) for _, e in decoded}
    dedupe.claim_keys(conn, keys)
    fresh, duplicates, conflicts = split_batch(decoded, dedupe.existing_hashes(conn, keys))
    return write_plan(conn, plan_events(fresh, bulk), duplicates, dead + conflicts, offsets, write_dead)


# What a database refuses of a value the schemas allowed (PostgreSQL: a NUL in a text, a sum past
# 64 bits; SQLite: an integer past 64 bits, refused by the driver before the statement runs).
_REFUSED_BY_DATABASE = (sa.exc.DataError, OverflowError)


def apply_isolating(conn: Connection, decoded: list[tuple[RawRecord, Event]], dead: list[DeadRecord],
                    offsets: Sequence[tuple[Any, ...]] = (), write_dead: bool = True) -> BatchOutcome:
    """``apply_batch``, except that an event holding a value only the database refuses becomes
    one ``invalid_data`` dead letter and its neighbours are written: the batch is halved under
    savepoints until the refused events stand alone. A poison event never stops the stream."""
    if conn.dialect.name == "sqlite":
        # the write lock first (waiting for other writers), then the savepoints inside it
        conn.exec_driver_sql("DELETE FROM consumer_offset WHERE 0 = 1")
    try:
        with conn.begin_nested():
            return apply_batch(conn, decoded, dead, offsets, write_dead)
    except _REFUSED_BY_DATABASE:
        pass
    total, refused = IngestResult(), list(dead)
    _write_apart(conn, decoded, total, refused)
    outcome = write_plan(conn, Plan(), total.duplicates, refused, offsets, write_dead)
    outcome.result.ingested = total.ingested
    return outcome


def _write_apart(conn: Connection, decoded: list[tuple[RawRecord, Event]], total: IngestResult, refused: list[DeadRecord]) -> None:
    if not decoded:
        return
    try:
        with conn.begin_nested():
            outcome = apply_batch(conn, decoded, [], write_dead=False)
        total.ingested += outcome.result.ingested
        total.duplicates += outcome.result.duplicates
        refused.extend(outcome.dead)
        return
    except _REFUSED_BY_DATABASE as exc:
        if len(decoded) == 1:
            refused.append(DeadRecord(decoded[0][0], "invalid_data", f"the database refused a value: {_refusal(exc)}"))
            return
    middle = len(decoded) // 2
    _write_apart(conn, decoded[:middle], total, refused)
    _write_apart(conn, decoded[middle:], total, refused)


def _refusal(exc: BaseException) -> str:
    """The database's reason without the statement or its parameters (which hold event values)."""
    cause = getattr(exc, "orig", None) or exc
    first = (str(cause).splitlines() or [""])[0]
    return mask_text(f"{type(cause).__name__}: {first}"[:300])


def write_plan(conn: Connection, plan: Plan, duplicates: int, dead: list[DeadRecord],
               offsets: Sequence[tuple[Any, ...]] = (), write_dead: bool = True) -> BatchOutcome:
    bulk = bulk_for(conn)
    ensure_partitions(conn, plan.times)
    bulk.run(conn, bulk.insert_sql("event", _EVENT_COLUMNS), plan.event_rows)
    bulk.run(conn, bulk.insert_sql("flow_day", _FLOW_COLUMNS, keys=_FLOW_KEYS, add=("events", "records"), widen=True), plan.day_rows)
    bulk.run(conn, bulk.insert_sql("flow_hour", ("hour", *_FLOW_COLUMNS[1:]), keys=("hour", *_FLOW_KEYS[1:]),
                                   add=("events", "records"), widen=True), plan.hour_rows)
    bulk.run(conn, bulk.insert_sql("subject_flow", _SUBJECT_COLUMNS, keys=_SUBJECT_KEYS, add=("events",), widen=True), plan.subject_rows)
    if plan.disclosures:
        from registry.ledger.chain import append_snapshots  # the ledger (and its signing key): on the first disclosure

        append_snapshots(conn, plan.disclosures)
    if write_dead:
        _write_dead(conn, bulk, dead)
    # (group, topic, partition, next offset[, fingerprint of the record before it])
    bulk.run(conn, bulk.insert_sql("consumer_offset", ("group_id", "topic", "partition", "next_offset", "last_record"),
                                   keys=("group_id", "topic", "partition"), highest=("next_offset",), follow=("last_record",)),
             [(*o, None) if len(o) == 4 else o for o in offsets])
    return BatchOutcome(IngestResult(ingested=len(plan.event_rows), duplicates=duplicates, dead_lettered=len(dead)), dead)


_EVENT_COLUMNS = ("source", "event_id", "type", "time", "recipient", "payload_hash", "body")
_FLOW_COLUMNS = ("day", "source", "recipient", "categories", "purpose", "legal_basis", "activity", "country", "mechanism",
                 "shard", "events", "records", "first_seen", "last_seen")
_FLOW_KEYS = _FLOW_COLUMNS[:10]
_SUBJECT_COLUMNS = ("week", "subject_ref", "recipient", "source", "purpose", "categories", "shard", "events", "first_seen",
                    "last_seen")
_SUBJECT_KEYS = _SUBJECT_COLUMNS[:7]
_DEAD_COLUMNS = ("raw_hash", "reason", "detail", "payload", "headers", "topic", "partition", "offset", "received_at", "status")


def _write_dead(conn: Connection, bulk: Bulk, dead: list[DeadRecord]) -> None:
    """One row per distinct original bytes: the original itself, or a copy with only its raw
    identifiers masked (``events.stored_copy``)."""
    now = bulk.time(datetime.now(timezone.utc))
    rows = {}
    for d in dead:
        # a tombstone has no value, a header may have none (the hash of others is as before)
        digest = hashlib.sha256(d.record.value if d.record.value is not None else b"\0<tombstone>")
        for name, value in d.record.headers or ():  # binary mode: the identity is in the headers
            digest.update(b"\0" + name.encode() + (b"=" + bytes(value) if value is not None else b"\1"))
        raw_hash = digest.hexdigest()
        payload, headers = stored_copy(d.record)
        rows[raw_hash] = (raw_hash, d.reason, d.detail[:2000], payload, headers,
                          d.record.topic, d.record.partition, d.record.offset, now, "dead")
    bulk.run(conn, bulk.insert_sql("dead_letter", _DEAD_COLUMNS, keys=("raw_hash",), ignore=True), [rows[k] for k in sorted(rows)])


def _anchor_new_heads(engine: Engine) -> None:
    """The ledger's anchor file, where one is configured (its module, and the signing key's
    library, load only then: a worker without disclosures or anchors never needs them)."""
    if anchor_path() is not None:
        from registry.ledger.anchors import anchor_new_heads

        anchor_new_heads(engine)
