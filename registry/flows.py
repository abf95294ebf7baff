"""Observed flows for a time window, from the day aggregates.

Days wholly inside the window come from ``flow_day``; a day row that straddles a bound (its
first and last event fall on both sides) is recounted from that day's events of that recipient,
so ``since`` (inclusive) and ``until`` (exclusive) are exact without scanning every event."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta, timezone
from typing import Any, Iterable

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .store import EventRow, FlowDay

__all__ = ["Flow", "observed_flows", "category_filter"]

_KEY = ("source", "recipient", "category", "purpose", "legal_basis", "activity", "country", "mechanism")


@dataclass(frozen=True)
class Flow:
    source: str
    recipient: str
    category: str
    purpose: str
    legal_basis: str
    activity: str
    country: str
    mechanism: str
    events: int
    records: int
    first_seen: datetime
    last_seen: datetime

    def merge(self, other: "Flow") -> "Flow":
        return replace(self, events=self.events + other.events, records=self.records + other.records,
                       first_seen=min(self.first_seen, other.first_seen), last_seen=max(self.last_seen, other.last_seen))


def category_filter(column: Any, category: str) -> Any:
    """``column`` is ``category`` or lies under it."""
    return sa.or_(column == category, column.like(category.replace("_", r"\_") + ".%", escape="\\"))


def observed_flows(conn: Connection, since: datetime | None = None, until: datetime | None = None,
                   category: str | None = None, recipient: str | None = None) -> list[Flow]:
    """Flows aggregated over the window, one per (source, recipient, category, purpose,
    legal basis, activity, country, mechanism). Whole days are summed by the database; only the
    day rows of a bound that falls inside a day are looked at one by one."""
    t = FlowDay.__table__
    filters = []
    if category:
        filters.append(category_filter(t.c.category, category))
    if recipient:
        filters.append(t.c.recipient == recipient)
    first_whole = None if since is None else (since.date() if _midnight(since) else since.date() + timedelta(days=1))
    end_whole = None if until is None else until.date()  # exclusive: until's own day is whole only up to it
    whole = list(filters)
    if first_whole is not None:
        whole.append(t.c.day >= first_whole)
    if end_whole is not None:
        whole.append(t.c.day < end_whole)
    keys = [t.c[k] for k in _KEY]
    query = sa.select(*keys, sa.func.sum(t.c.events), sa.func.sum(t.c.records), sa.func.min(t.c.first_seen),
                      sa.func.max(t.c.last_seen)).where(*whole).group_by(*keys)
    merged: dict[tuple[str, ...], Flow] = {}
    if first_whole is None or end_whole is None or first_whole < end_whole:
        for row in conn.execute(query):
            _add(merged, Flow(*row[:8], int(row[8]), int(row[9]), row[10], row[11]))
    edge_days = {d for d, bound in ((since, since), (until, until)) if bound is not None and not _midnight(bound)
                 for d in [bound.date()]}
    recount: set[tuple[Any, str]] = set()
    for day in sorted(edge_days):
        for row in conn.execute(sa.select(t).where(*filters, t.c.day == day)):
            if (since is not None and row.last_seen < since) or (until is not None and row.first_seen >= until):
                continue
            if (since is not None and row.first_seen < since) or (until is not None and row.last_seen >= until):
                recount.add((row.day, row.recipient))
                continue
            _add(merged, Flow(**{k: getattr(row, k) for k in _KEY}, events=row.events, records=row.records,
                              first_seen=row.first_seen, last_seen=row.last_seen))
    for day, who in sorted(recount):
        for flow in _from_events(conn, day, who, since, until, category):
            _add(merged, flow)
    return sorted(merged.values(), key=lambda f: tuple(getattr(f, k) for k in _KEY))


def _midnight(moment: datetime) -> bool:
    return moment.astimezone(timezone.utc).time() == time.min


def _add(merged: dict[tuple[str, ...], Flow], flow: Flow) -> None:
    key = tuple(getattr(flow, k) for k in _KEY)
    known = merged.get(key)
    merged[key] = flow if known is None else known.merge(flow)


def _from_events(conn: Connection, day: Any, recipient: str, since: datetime | None, until: datetime | None,
                 category: str | None) -> Iterable[Flow]:
    start = datetime.combine(day, time.min, tzinfo=timezone.utc)
    end = start + timedelta(days=1)
    low, high = max(start, since) if since else start, min(end, until) if until else end
    e = EventRow.__table__
    rows = conn.execute(sa.select(e.c.source, e.c.time, e.c.body).where(
        e.c.recipient == recipient, e.c.time >= low, e.c.time < high, e.c.type == "registry.transfer.v1"))
    for source, moment, body in rows:
        envelope = orjson.loads(body)
        d = envelope["data"] if "data" in envelope else envelope
        for cat in dict.fromkeys(d["data_categories"]):
            if category and not (cat == category or cat.startswith(category + ".")):
                continue
            yield Flow(source, recipient, cat, d["purpose"], d["legal_basis"], d.get("activity", ""),
                       d.get("destination_country", ""), d.get("transfer_mechanism", ""),
                       1, d.get("record_count", 1), moment, moment)
