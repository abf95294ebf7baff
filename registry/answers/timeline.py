"""Activity over time: events per ISO week (Monday to Sunday, UTC), for the whole store or one
recipient, summed from ``flow_day``. Each transfer event adds to exactly one ``flow_day`` row,
so the sum of a week's rows counts each event once however many categories it carries
(contract §1) — the same number a count over the stored events gives."""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from registry.model.tables import FlowDay, monday

__all__ = ["WeekCount", "weekly_events"]


class WeekCount(BaseModel):
    week: date  # the Monday
    events: int
    records: int


def weekly_events(engine: Engine, recipient: str | None = None) -> list[WeekCount]:
    """One row per week from the first to the last week with events (empty weeks as 0)."""
    d = FlowDay
    query = sa.select(d.c.day, sa.func.sum(d.c.events), sa.func.sum(d.c.records)).group_by(d.c.day)
    if recipient is not None:
        query = query.where(d.c.recipient == recipient)
    weeks: dict[date, list[int]] = {}
    with engine.connect() as conn:
        for day, events, records in conn.execute(query):
            day = day if isinstance(day, date) else date.fromisoformat(str(day))
            counts = weeks.setdefault(monday(day), [0, 0])
            counts[0] += int(events)
            counts[1] += int(records)
    if not weeks:
        return []
    first, last = min(weeks), max(weeks)
    out = []
    week = first
    while week <= last:
        events, records = weeks.get(week, (0, 0))
        out.append(WeekCount(week=week, events=events, records=records))
        week += timedelta(weeks=1)
    return out
