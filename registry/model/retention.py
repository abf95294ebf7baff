"""Periods of the registry's own retention (contract §6: ``registry_retention`` in the manifest)
and the horizons they give at a moment.

A horizon is where removal stops, rounded so that what stays is whole: events at a whole hour
(the per-hour aggregates answer any whole-hour window over what was removed), subject index rows
at a week's Monday (a row holds a week), dead letters at the exact moment."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

__all__ = ["Kind", "KINDS", "parse_period", "period_start", "horizon", "purged_before"]

Kind = Literal["events", "subject_refs", "dead_letters"]
KINDS: tuple[Kind, ...] = ("events", "subject_refs", "dead_letters")
_PERIOD = re.compile(r"^\s*([1-9][0-9]{0,5})\s*(hour|day|week|month|year)s?\s*$")


def parse_period(text: str) -> tuple[int, str]:
    """("400 days") → (400, "day"); ValueError for anything else."""
    match = _PERIOD.match(text)
    if match is None:
        raise ValueError(f"not a period: {text!r} (a whole number of hours, days, weeks, months or years, like '400 days')")
    return int(match.group(1)), match.group(2)


def period_start(now: datetime, text: str) -> datetime:
    """``now`` minus the period; months and years on the calendar (31 March minus a month is
    the last day of February)."""
    n, unit = parse_period(text)
    if unit in ("hour", "day", "week"):
        return now - timedelta(**{f"{unit}s": n})
    months = n * (12 if unit == "year" else 1)
    total = now.year * 12 + now.month - 1 - months
    year, month = divmod(total, 12)
    if year < 1:
        return datetime(1, 1, 1, tzinfo=timezone.utc)
    month += 1
    for day in range(now.day, 0, -1):
        try:
            return now.replace(year=year, month=month, day=day)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def horizon(kind: Kind, now: datetime, text: str) -> datetime:
    """What of ``kind`` is older than this goes."""
    start = period_start(now.astimezone(timezone.utc), text)
    if kind == "events":
        return start.replace(minute=0, second=0, microsecond=0)
    if kind == "subject_refs":
        day = start.replace(hour=0, minute=0, second=0, microsecond=0)
        return day - timedelta(days=day.weekday())
    return start


def purged_before(conn: Connection, kind: Kind) -> datetime | None:
    """Everything of ``kind`` before this was removed by retention (None: nothing ever was)."""
    from .tables import RetentionMark

    mark = RetentionMark
    found = conn.execute(sa.select(mark.c.purged_before).where(mark.c.kind == kind)).scalar()
    return None if found is None else found.astimezone(timezone.utc)
