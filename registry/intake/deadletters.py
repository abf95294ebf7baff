"""Dead letters: listing them and replaying them through the ingest path (e.g. after a manifest
adds the taxonomy extension an event needed). Replayed rows are kept, marked ``replayed``.

A row keeps the original event unless it held a raw identifier (``events.stored_copy``), so a
replay is exactly the original: same ``(source, id)``, same payload hash, and a later redelivery
of the original counts as a duplicate. ``raw_identifier`` and ``too_large`` rows are never
replayed (``_NOT_REPLAYED``)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import orjson
import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from registry.exceptions import EventError
from registry.ledger.anchors import anchor_new_heads
from registry.model.events import Event, RawRecord
from registry.model.tables import DeadLetter
from registry.model.times import format_time

from .ingest import DeadRecord, Ingestor, apply_isolating

__all__ = ["HTTP_ORIGIN", "DeadLetterView", "ReplayResult", "list_dead_letters", "replay"]

# Rows whose copy is not the original: masked identifiers (ingesting them would record an event
# nobody sent), or the first 4 KiB of an oversized record (it can only fail again).
_NOT_REPLAYED = ("raw_identifier", "too_large")
# The topic column of records posted to ``/api/events``: they have no partition or offset.
HTTP_ORIGIN = "http"


class DeadLetterView(BaseModel):
    id: int
    reason: str
    detail: str
    status: str
    received_at: str
    topic: str | None
    partition: int | None
    offset: int | None
    payload: str

    def origin(self) -> str:
        """Where the record came from, in words: a Kafka record, the HTTP API, or a line of a
        file (``topic`` holds the file's path; none for stdin)."""
        if self.partition is not None:
            return f"{self.topic} [{self.partition}] @ {self.offset}"
        if self.topic == HTTP_ORIGIN and self.offset is None:
            return "HTTP API"
        if self.offset is not None:
            return f"{self.topic or 'stdin'}, line {self.offset}"
        return self.topic or "not recorded"


class ReplayResult(BaseModel):
    replayed: int
    ingested: int
    still_dead: int


def list_dead_letters(engine: Engine, reason: str | None = None, include_replayed: bool = False) -> list[DeadLetterView]:
    query = sa.select(DeadLetter).order_by(DeadLetter.c.id)
    if reason:
        query = query.where(DeadLetter.c.reason == reason)
    if not include_replayed:
        query = query.where(DeadLetter.c.status == "dead")
    with engine.connect() as conn:
        return [DeadLetterView(id=r.id, reason=r.reason, detail=r.detail, status=r.status, received_at=format_time(r.received_at),
                               topic=r.topic, partition=r.partition, offset=r.offset, payload=r.payload)
                for r in conn.execute(query)]


def replay(engine: Engine) -> ReplayResult:
    """Re-validate every dead row but ``raw_identifier`` and ``too_large`` ones against the current manifest; those
    that pass are ingested (or found to be duplicates) and marked replayed, the rest keep their
    (updated) reason. ``replayed`` counts the rows tried."""
    ingestor = Ingestor(engine)
    now = datetime.now(timezone.utc)
    ingested = still_dead = attempted = 0
    with engine.begin() as conn:
        t = DeadLetter
        rows = conn.execute(sa.select(t).where(t.c.status == "dead", t.c.reason.not_in(_NOT_REPLAYED)).order_by(t.c.id)).all()
        passing: list[tuple[RawRecord, Event]] = []
        row_of: dict[int, Any] = {}
        for row in rows:
            attempted += 1
            headers = [(k, v.encode()) for k, v in orjson.loads(row.headers)] if row.headers else None
            record = RawRecord(value=row.payload.encode(), headers=headers, offset=row.id)
            try:
                passing.append((record, ingestor.validator.decode(record)))
                row_of[row.id] = row
            except EventError as exc:
                still_dead += 1
                _mark(conn, row.id, status="dead", reason=exc.reason, detail=str(exc))
        too_old: list[DeadRecord] = []
        passing = ingestor.refuse_too_old(passing, too_old)
        outcome = apply_isolating(conn, passing, [], write_dead=False)
        outcome.dead.extend(too_old)
        ingested = outcome.result.ingested
        for dead in outcome.dead:
            still_dead += 1
            _mark(conn, int(dead.record.offset or 0), status="dead", reason=dead.reason, detail=dead.detail)
        refused = {int(d.record.offset or 0) for d in outcome.dead}
        for row_id in row_of:
            if row_id not in refused:
                _mark(conn, row_id, status="replayed", replayed_at=now)
    anchor_new_heads(engine)  # replayed disclosures' heads, once committed
    return ReplayResult(replayed=attempted, ingested=ingested, still_dead=still_dead)


def _mark(conn: sa.Connection, row_id: int, **values: Any) -> None:
    conn.execute(sa.update(DeadLetter).where(DeadLetter.c.id == row_id).values(**values))
