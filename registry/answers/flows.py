"""Observed flows for a time window, from the aggregates.

Whole days come from ``flow_day``, whole hours of a partial day from ``flow_hour``, and the
recipients with an hour row straddling a bound have that hour recounted from their events, so
``since`` (inclusive) and ``until`` (exclusive) are exact while touching at most two hours of
events. The unit is the :class:`Observation`: the events of one signature (their category *set*
included), so each event is in exactly one observation; :func:`per_category` spreads them into
one :class:`Flow` per category, which counts the events carrying that category (contract §1)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Self

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from registry.exceptions import InputError
from registry.model.events import TRANSFER
from registry.model.retention import purged_before
from registry.model.tables import EventRow, FlowDay, FlowHour
from registry.model.taxonomy import covers, valid_key
from registry.model.times import format_time

__all__ = ["Observation", "Flow", "observations", "per_category", "category_filter", "cut"]

_KEY = ("source", "recipient", "categories", "purpose", "legal_basis", "activity", "country", "mechanism")
_COUNTED = ("source", "recipient", "purpose", "legal_basis", "activity", "country", "mechanism", "events", "records",
            "first_seen", "last_seen")


@dataclass(frozen=True, kw_only=True)
class _Counted:
    """What an observation and a flow share: the signature but the categories, and the counts."""

    source: str
    recipient: str
    purpose: str
    legal_basis: str
    activity: str
    country: str
    mechanism: str
    events: int
    records: int
    first_seen: datetime
    last_seen: datetime

    def merge(self, other: Self) -> Self:
        return replace(self, events=self.events + other.events, records=self.records + other.records,
                       first_seen=min(self.first_seen, other.first_seen), last_seen=max(self.last_seen, other.last_seen))


@dataclass(frozen=True, kw_only=True)
class Observation(_Counted):
    """Events of one signature in a window: every event is in exactly one observation, so a sum
    of ``events`` over any set of observations counts each event once."""

    categories: tuple[str, ...]  # sorted

    def covered(self, category: str | None) -> tuple[str, ...]:
        """The categories of these events under ``category`` (all of them for None)."""
        return self.categories if category is None else tuple(c for c in self.categories if covers(category, c))


@dataclass(frozen=True, kw_only=True)
class Flow(_Counted):
    """One category's flow: the events that carried ``category`` (with their record counts)."""

    category: str


def per_category(found: Iterable[Observation], category: str | None = None) -> list[Flow]:
    """One flow per (source, recipient, category, purpose, legal basis, activity, country,
    mechanism), for the categories under ``category`` (all for None), sorted by key."""
    merged: dict[tuple[str, ...], Flow] = {}
    for o in found:
        for cat in o.covered(category):
            flow = Flow(**{k: getattr(o, k) for k in _COUNTED}, category=cat)
            key = (o.source, o.recipient, cat, o.purpose, o.legal_basis, o.activity, o.country, o.mechanism)
            known = merged.get(key)
            merged[key] = flow if known is None else known.merge(flow)
    return [merged[k] for k in sorted(merged)]


def cut(until: datetime | None, as_of: datetime | None) -> datetime | None:
    """The window's end with ``--as-of``: only events before ``as_of`` existed then."""
    if as_of is None:
        return until
    return as_of if until is None else min(until, as_of)


def category_filter(column: Any, category: str) -> Any:
    """``column`` is ``category`` or lies under it."""
    return sa.or_(column == category, column.like(_escape(category) + ".%", escape="\\"))


def _set_filter(column: Any, category: str) -> Any:
    """The comma-joined set in ``column`` holds ``category`` or a key under it (a prefilter: the
    rows are checked again with ``covers``)."""
    wrapped = sa.literal(",") + column + sa.literal(",")
    return sa.or_(wrapped.like(f"%,{_escape(category)},%", escape="\\"), wrapped.like(f"%,{_escape(category)}.%", escape="\\"))


def _escape(key: str) -> str:
    return key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def observations(conn: Connection, since: datetime | None = None, until: datetime | None = None,
                 category: str | None = None, recipient: str | None = None) -> list[Observation]:
    """The window's observations (only those with a category under ``category``, and of
    ``recipient``, when given), one per signature, sorted by it: whole days summed from
    ``flow_day``, the whole hours of a partial day from ``flow_hour``, and the hour a bound falls
    inside looked at row by row; a recipient with a row there that straddles the bound has that
    whole hour (within the bound) recounted from its events instead."""
    if category is not None and not valid_key(category):
        raise InputError("not a taxonomy key (like user.contact.email)", "category")
    _whole_hours_where_purged(conn, since=since, until=until)
    d, h = FlowDay, FlowHour
    merged: dict[tuple[Any, ...], Observation] = {}

    def add(o: Observation) -> None:
        if category is not None and not o.covered(category):
            return
        key = tuple(getattr(o, k) for k in _KEY)
        known = merged.get(key)
        merged[key] = o if known is None else known.merge(o)

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
            add(_observation(row[:8], int(row[8]), int(row[9]), row[10], row[11]))

    add_sums(d, "day", since and _ceil(since, DAY).date(), until and until.date())
    partial_days = {_floor(b, DAY) for b in (since, until) if b is not None and b != _floor(b, DAY)}
    for day in sorted(partial_days):
        low = max(day, _ceil(since, HOUR)) if since else day
        high = min(day + DAY, _floor(until, HOUR)) if until else day + DAY
        add_sums(h, "hour", low, high)
    partial_hours = {_floor(b, HOUR) for b in (since, until) if b is not None and b != _floor(b, HOUR)}
    for hour in sorted(partial_hours):
        low, high = max(hour, since) if since else hour, min(hour + HOUR, until) if until else hour + HOUR
        if low >= high:
            continue
        rows = [row for row in conn.execute(sa.select(h).where(*_filters(h, category, recipient), h.c.hour == hour))
                if row.last_seen >= low and row.first_seen < high]
        # A recipient is recounted whole for this hour or not at all: mixing its untouched rows
        # with a recount of its events would count those rows' events twice.
        recount = sorted({row.recipient for row in rows if row.first_seen < low or row.last_seen >= high})
        for row in rows:
            if row.recipient not in recount:
                add(_observation([getattr(row, k) for k in _KEY], row.events, row.records, row.first_seen, row.last_seen))
        for who in recount:
            for o in _from_events(conn, who, low, high):
                add(o)
    return [merged[k] for k in sorted(merged)]


def _whole_hours_where_purged(conn: Connection, **bounds: datetime | None) -> None:
    """Contract §6: where retention removed the events only the hour aggregates remain, so a
    bound there must be a whole hour (anything else could only be answered approximately)."""
    purged = purged_before(conn, "events")
    if purged is None:
        return
    for name, bound in bounds.items():
        if bound is not None and bound < purged and bound != _floor(bound, HOUR):
            raise InputError(f"{format_time(bound)} is inside the period whose events retention removed (before "
                             f"{format_time(purged)}): only whole hours are exact there; use a bound on the hour", name)


def _observation(key: Any, events: int, records: int, first_seen: datetime, last_seen: datetime) -> Observation:
    source, recipient, categories, purpose, legal_basis, activity, country, mechanism = key
    return Observation(source=source, recipient=recipient, categories=tuple(categories.split(",")), purpose=purpose,
                       legal_basis=legal_basis, activity=activity, country=country, mechanism=mechanism, events=events,
                       records=records, first_seen=first_seen, last_seen=last_seen)


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
        where.append(_set_filter(table.c.categories, category))
    if recipient:
        where.append(table.c.recipient == recipient)
    return where


def _from_events(conn: Connection, recipient: str, low: datetime, high: datetime) -> Iterable[Observation]:
    e = EventRow
    rows = conn.execute(sa.select(e.c.source, e.c.time, e.c.body).where(
        e.c.recipient == recipient, e.c.time >= low, e.c.time < high, e.c.type == TRANSFER))
    for source, moment, body in rows:
        envelope = orjson.loads(body)
        d = envelope["data"] if "data" in envelope else envelope
        yield _observation((source, recipient, ",".join(sorted(set(d["data_categories"]))), d["purpose"], d["legal_basis"],
                            d.get("activity", ""), d.get("destination_country", ""), d.get("transfer_mechanism", "")),
                           1, d.get("record_count", 1), moment, moment)
