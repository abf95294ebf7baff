"""Retention of the registry's own data (contract §6): ``retention apply`` and the worker's
hourly run remove stored events, subject index rows and dead letters older than the horizons of
the newest declared manifest's ``registry_retention``. The per-hour and per-day aggregates stay,
so counts over removed periods stay exact at whole hours.

On PostgreSQL the months wholly before the events horizon are dropped as partitions (no row by
row delete, no dead tuples to vacuum) and only the rest of the horizon's own month is deleted.
Each run records what it removed in ``retention_mark``; the marks only move forward."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timezone
from typing import Any, Callable

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection, Engine

from registry.model.declarations import newest_declared
from registry.model.partitions import event_partitions, forget_partitions, next_month
from registry.model.retention import KINDS, Kind, horizon, purged_before
from registry.model.tables import RetentionMark, monday
from registry.model.times import format_time
from registry.model import retry

from .writes import bulk_for

__all__ = ["Horizons", "RetentionResult", "apply_retention", "HourlyRetention", "RETENTION_LOCK_KEY"]

RETENTION_LOCK_KEY = 0x5245_4752  # "REGR": one retention run at a time (CLI and workers)
# A partition drop waits for ACCESS EXCLUSIVE on ``event`` behind any reader (a long report, a
# pg_dump), and every writer queues behind the waiting drop: a step that cannot have its lock
# soon is skipped and retried at the next run instead. The statement timeout bounds a delete
# (an hourly run deletes about an hour of events; the first run after a long pause may need more
# runs to catch up, each of which still removes whole partitions).
LOCK_TIMEOUT = "2s"
STATEMENT_TIMEOUT = "60s"
_GAVE_UP = ("55P03", "57014")  # lock_not_available, query_canceled (statement_timeout)
log = logging.getLogger("registry.retention")


class Horizons(BaseModel):
    events: str | None
    subject_refs: str | None
    dead_letters: str | None


class RetentionResult(BaseModel):
    events_removed: int
    subject_refs_removed: int
    dead_letters_removed: int
    horizon: Horizons


def apply_retention(engine: Engine, now: datetime | None = None, dry_run: bool = False) -> RetentionResult:
    """Remove what is older than each horizon (``dry_run``: count it, remove nothing). A kind
    the manifest gives no period for (or no manifest) is kept: its horizon is null."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    dropped = False
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({RETENTION_LOCK_KEY})")
        manifest = newest_declared(conn)
        periods = manifest.registry_retention if manifest is not None else None
        horizons: dict[Kind, datetime | None] = {
            kind: None if periods is None or getattr(periods, kind) is None else horizon(kind, now, getattr(periods, kind))
            for kind in KINDS}
        removed = {kind: 0 for kind in KINDS}
        for kind, moment in horizons.items():
            if moment is None:
                continue
            try:
                with conn.begin_nested():
                    count, dropped_here = _REMOVERS[kind](conn, moment, dry_run)
            except sa.exc.OperationalError as exc:
                if retry.sqlstate(exc) not in _GAVE_UP:
                    raise
                # nothing of this step happened (its savepoint is rolled back) and no mark moves
                log.warning("retention_skipped", extra={"kind": kind, "reason": _first_line(exc)})
                continue
            removed[kind], dropped = removed[kind] + count, dropped or dropped_here
            if not dry_run:
                _mark(conn, kind, moment, now)
    if dropped:
        forget_partitions(engine)
    return RetentionResult(events_removed=removed["events"], subject_refs_removed=removed["subject_refs"],
                           dead_letters_removed=removed["dead_letters"],
                           horizon=Horizons(**{k: None if v is None else format_time(v) for k, v in horizons.items()}))


def _events(conn: Connection, before: datetime, dry_run: bool) -> tuple[int, bool]:
    bulk = bulk_for(conn)
    removed, dropped = 0, False
    if conn.dialect.name == "postgresql" and not dry_run:
        for month, name in sorted(event_partitions(conn).items()):
            if next_month(month) <= before:
                try:
                    with conn.begin_nested():
                        count = int(conn.exec_driver_sql(f"SELECT count(*) FROM {name}").scalar_one())
                        conn.exec_driver_sql(f"DROP TABLE {name}")
                except sa.exc.OperationalError as exc:
                    if retry.sqlstate(exc) not in _GAVE_UP:
                        raise
                    # this month stays for now; the DELETE below may still empty it row by row
                    log.warning("retention_skipped", extra={"kind": "events", "partition": name, "reason": _first_line(exc)})
                    continue
                removed += count
                dropped = True
    if dry_run:
        removed += int(conn.exec_driver_sql(f"SELECT count(*) FROM event WHERE time < {bulk.mark}", (bulk.time(before),)).scalar_one())
    else:
        removed += conn.exec_driver_sql(f"DELETE FROM event WHERE time < {bulk.mark}", (bulk.time(before),)).rowcount
    return removed, dropped


def _first_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    return (str(cause).splitlines() or [""])[0][:200]


def _subject_refs(conn: Connection, before: datetime, dry_run: bool) -> tuple[int, bool]:
    bulk = bulk_for(conn)
    week = bulk.day(monday(before.date()))
    verb = "SELECT count(*)" if dry_run else "DELETE"
    result = conn.exec_driver_sql(f"{verb} FROM subject_flow WHERE week < {bulk.mark}", (week,))
    return (int(result.scalar_one()) if dry_run else result.rowcount), False


def _dead_letters(conn: Connection, before: datetime, dry_run: bool) -> tuple[int, bool]:
    bulk = bulk_for(conn)
    verb = "SELECT count(*)" if dry_run else "DELETE"
    result = conn.exec_driver_sql(f"{verb} FROM dead_letter WHERE received_at < {bulk.mark}", (bulk.time(before),))
    return (int(result.scalar_one()) if dry_run else result.rowcount), False


_REMOVERS: dict[Kind, Callable[[Connection, datetime, bool], tuple[int, bool]]] = {
    "events": _events, "subject_refs": _subject_refs, "dead_letters": _dead_letters}


def _mark(conn: Connection, kind: Kind, moment: datetime, now: datetime) -> None:
    known = purged_before(conn, kind)
    if known is not None and known >= moment:
        return  # a later horizon was applied before (the period was longer then): what is gone stays gone
    mark = RetentionMark
    conn.execute(sa.delete(mark).where(mark.c.kind == kind))
    conn.execute(sa.insert(mark).values(kind=kind, purged_before=moment, applied_at=now))


class HourlyRetention:
    """For a worker's loop: ``maybe_apply()`` between batches runs retention at most once per
    ``every`` seconds (first at the first call). A failure is logged and retried at the next
    period, never raised: retention must not stop the stream."""

    def __init__(self, engine: Engine, every: float = 3600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine, self.every, self.clock = engine, every, clock
        self._next: float | None = None

    def maybe_apply(self) -> RetentionResult | None:
        now = self.clock()
        if self._next is not None and now < self._next:
            return None
        self._next = now + self.every
        try:
            result = apply_retention(self.engine)
        except Exception as exc:  # noqa: BLE001  logged and retried in an hour; the batches go on
            log.warning("retention_failed", extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
            return None
        if result.events_removed or result.subject_refs_removed or result.dead_letters_removed:
            log.info("retention_applied", extra=_fields(result))
        return result


def _fields(result: RetentionResult) -> dict[str, Any]:
    return {"events_removed": result.events_removed, "subject_refs_removed": result.subject_refs_removed,
            "dead_letters_removed": result.dead_letters_removed}
