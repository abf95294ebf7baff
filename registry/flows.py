"""Observed flows for a time window, from the day aggregates.

Whole days come from ``flow_day``, whole hours of a partial day from ``flow_hour``, and an hour
row that straddles a bound is recounted from that hour's events of that recipient, so ``since``
(inclusive) and ``until`` (exclusive) are exact while touching at most two hours of events."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .events import TRANSFER
from .exceptions import InputError
from .store import EventRow, FlowDay, FlowHour, table
from .taxonomy import covers, valid_key

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
    legal basis, activity, country, mechanism): whole days summed from ``flow_day``, the whole
    hours of a partial day from ``flow_hour``, and only the hour a bound falls inside is looked
    at row by row (recounted from its events where a row straddles the bound)."""
    if category is not None and not valid_key(category):
        raise InputError("not a taxonomy key (like user.contact.email)", "category")
    d, h = table(FlowDay), table(FlowHour)
    merged: dict[tuple[str, ...], Flow] = {}

    def add_sums(table: sa.Table, column: str, low: Any, high: Any) -> None:
        if low is not None and high is not None and low >= high:
            return
        keys = [table.c[k] for k in _KEY]
        where = _filters(table, category, recipient)
        if low is not None:
            where.append(table.c[column] >= low)
        if high is not None:
            where.append(table.c[column] < high)
        query = sa.select(*keys, sa.func.sum(table.c.events), sa.func.sum(table.c.records), sa.func.min(table.c.first_seen),
                          sa.func.max(table.c.last_seen)).where(*where).group_by(*keys)
        for row in conn.execute(query):
            _add(merged, Flow(*row[:8], int(row[8]), int(row[9]), row[10], row[11]))

    add_sums(d, "day", since and _ceil(since, DAY).date(), until and until.date())
    partial_days = {_floor(b, DAY) for b in (since, until) if b is not None and b != _floor(b, DAY)}
    for day in sorted(partial_days):
        low = max(day, _ceil(since, HOUR)) if since else day
        high = min(day + DAY, _floor(until, HOUR)) if until else day + DAY
        add_sums(h, "hour", low, high)
    partial_hours = {_floor(b, HOUR) for b in (since, until) if b is not None and b != _floor(b, HOUR)}
    for hour in sorted(partial_hours):
        recount: set[str] = set()
        for row in conn.execute(sa.select(h).where(*_filters(h, category, recipient), h.c.hour == hour)):
            if (since is not None and row.last_seen < since) or (until is not None and row.first_seen >= until):
                continue
            if (since is not None and row.first_seen < since) or (until is not None and row.last_seen >= until):
                recount.add(row.recipient)
                continue
            _add(merged, Flow(**{k: getattr(row, k) for k in _KEY}, events=row.events, records=row.records,
                              first_seen=row.first_seen, last_seen=row.last_seen))
        low, high = max(hour, since) if since else hour, min(hour + HOUR, until) if until else hour + HOUR
        for who in sorted(recount):
            for flow in _from_events(conn, who, low, high, category):
                _add(merged, flow)
    return sorted(merged.values(), key=lambda f: tuple(getattr(f, k) for k in _KEY))


DAY, HOUR = timedelta(days=1), timedelta(hours=1)


def _floor(moment: datetime, step: timedelta) -> datetime:
    moment = moment.astimezone(timezone.utc)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0) if step == DAY else moment.replace(minute=0, second=0, microsecond=0)


def _ceil(moment: datetime, step: timedelta) -> datetime:
    floor = _floor(moment, step)
    return floor if floor == moment else floor + step


def _filters(table: sa.Table, category: str | None, recipient: str | None) -> list[Any]:
    where = []
    if category:
        where.append(category_filter(table.c.category, category))
    if recipient:
        where.append(table.c.recipient == recipient)
    return where


def _add(merged: dict[tuple[str, ...], Flow], flow: Flow) -> None:
    key = tuple(getattr(flow, k) for k in _KEY)
    known = merged.get(key)
    merged[key] = flow if known is None else known.merge(flow)


def _from_events(conn: Connection, recipient: str, low: datetime, high: datetime, category: str | None) -> Iterable[Flow]:
    e = table(EventRow)
    rows = conn.execute(sa.select(e.c.source, e.c.time, e.c.body).where(
        e.c.recipient == recipient, e.c.time >= low, e.c.time < high, e.c.type == TRANSFER))
    for source, moment, body in rows:
        envelope = orjson.loads(body)
        d = envelope["data"] if "data" in envelope else envelope
        for cat in dict.fromkeys(d["data_categories"]):
            if category and not covers(category, cat):
                continue
            yield Flow(source, recipient, cat, d["purpose"], d["legal_basis"], d.get("activity", ""),
                       d.get("destination_country", ""), d.get("transfer_mechanism", ""),
                       1, d.get("record_count", 1), moment, moment)
