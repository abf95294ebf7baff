"""Month partitions of the ``event`` table on PostgreSQL (contract §6: retention drops whole
months). A partition is created the first time a batch holds an event of its month, in a short
transaction of its own before the batch (so the brief exclusive lock it takes on ``event`` never
sits inside a batch that holds row locks); SQLite has no partitions and these are no-ops."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import datetime, timezone
from typing import Iterable

from sqlalchemy.engine import Connection, Engine

__all__ = ["month_of", "next_month", "partition_name", "ensure_partitions", "event_partitions", "forget_partitions",
           "PARTITION_LOCK_KEY"]

PARTITION_LOCK_KEY = 0x5245_4750  # "REGP": serialises partition creation between workers

_KNOWN: dict[str, set[datetime]] = {}  # per database URL: the months known to have a partition


def month_of(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(month: datetime) -> datetime:
    return month.replace(year=month.year + 1, month=1) if month.month == 12 else month.replace(month=month.month + 1)


def partition_name(month: datetime) -> str:
    return f"event_p{month.year:04d}{month.month:02d}"


def event_partitions(conn: Connection) -> dict[datetime, str]:
    """The partitions of ``event`` by the month they hold (read from their names)."""
    rows = conn.exec_driver_sql(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = 'event'::regclass").all()
    found = {}
    for (name,) in rows:
        if name.startswith("event_p") and name[7:].isdigit() and len(name) == 13:
            found[datetime(int(name[7:11]), int(name[11:13]), 1, tzinfo=timezone.utc)] = name
    return found


def create_partition(conn: Connection, month: datetime) -> None:
    conn.exec_driver_sql(
        f"CREATE TABLE IF NOT EXISTS {partition_name(month)} PARTITION OF event "
        f"FOR VALUES FROM ('{month.isoformat()}') TO ('{next_month(month).isoformat()}')")


def ensure_partitions(target: Engine | Connection, moments: Iterable[datetime]) -> None:
    """Create the missing month partitions for ``moments`` (PostgreSQL only). Given an engine, in
    a transaction of its own; given a connection, inside its transaction (a no-op when the
    engine's call before the batch already made them)."""
    if target.dialect.name != "postgresql":
        return
    engine = target if isinstance(target, Engine) else target.engine
    known = _KNOWN.setdefault(str(engine.url), set())
    months = {month_of(m) for m in moments} - known
    if not months:
        return
    with engine.begin() if isinstance(target, Engine) else nullcontext(target) as conn:
        # two workers creating one partition at once would collide in the catalog
        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PARTITION_LOCK_KEY})")
        existing = event_partitions(conn)
        for month in sorted(months - set(existing)):
            create_partition(conn, month)
    known |= months | set(existing)


def forget_partitions(engine: Engine) -> None:
    """Drop this process's knowledge (after retention dropped partitions, or a refused insert)."""
    _KNOWN.pop(str(engine.url), None)
