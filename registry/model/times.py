"""Times as the registry reads and writes them: RFC 3339 in UTC with a Z, the window bounds
users give (RFC 3339, or a date meaning its midnight UTC), and the dates of a disclosure checked
against each other."""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from registry.exceptions import EventError, InputError

__all__ = ["parse_time", "parse_bound", "format_time", "check_dates", "date_order_problems", "FIRST_YEAR", "LAST_YEAR"]

FIRST_YEAR, LAST_YEAR = 1, 9998


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("z", "Z"))
    if moment.tzinfo is None:
        raise ValueError("time needs an offset or Z")
    return moment.astimezone(timezone.utc)


def parse_bound(text: str | None, name: str = "since") -> datetime | None:
    """A window bound given by a user: RFC 3339, or a date meaning its midnight UTC; None stays
    None. InputError names the option or parameter ``name``."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            moment = datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
        else:
            moment = parse_time(text)
    except OverflowError:
        # 0001-01-01T00:00:00+01:00 is a real time, but in UTC it falls before year 1
        raise InputError(f"must lie in the years {FIRST_YEAR} to {LAST_YEAR}: {text!r}", name) from None
    except ValueError as exc:
        # fromisoformat says "day is out of range for month" for 2026-02-30: a real date is wanted
        why = "not a date on the calendar" if "range" in str(exc) else "not an RFC 3339 time (2026-03-01T09:00:00Z) or a date (2026-03-01)"
        raise InputError(f"{why}: {text!r}", name) from None
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        # a window's bounds are rounded to whole days and hours: 9999-12-31 has no next day
        raise InputError(f"must lie in the years {FIRST_YEAR} to {LAST_YEAR}: {text!r}", name)
    return moment


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, as every output of the registry writes times."""
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def check_dates(data: dict[str, Any]) -> None:
    """The schema checks the shape of dates; a month 13 or a day 32 is caught here, and so are
    dates that contradict each other or that no clock can hold (contract §2)."""
    for name in ("received_at", "disclosed_at", "confirmed_at"):
        if name in data:
            try:
                parse_time(data[name])
            except (ValueError, OverflowError) as exc:
                raise EventError("invalid_data", f"not a valid time: {exc}", f"data.{name}") from None
    if "notice_due" in data:
        try:
            date.fromisoformat(data["notice_due"])
        except ValueError as exc:
            raise EventError("invalid_data", f"not a valid date: {exc}", "data.notice_due") from None
    for name, message in date_order_problems(data):
        raise EventError("invalid_data", message, f"data.{name}")


def date_order_problems(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, message) for each date of a disclosure snapshot before its receipt (contract §2):
    a request cannot be answered, nor its notice fall due, before it arrived. Fields that are
    not valid times themselves are left to their own checks."""
    if not all(isinstance(data.get(name, ""), str) for name in ("received_at", "disclosed_at", "confirmed_at", "notice_due")):
        return []  # a field of the wrong kind: its own check says so
    try:
        received = parse_time(data["received_at"])
    except (KeyError, ValueError, OverflowError):
        return []
    problems: list[tuple[str, str]] = []
    for name in ("received_at", "disclosed_at", "confirmed_at"):
        try:
            # a clock is a time plus up to 60 days: it must stay inside what a datetime holds
            if name in data and not 1 <= parse_time(data[name]).year <= 9998:
                problems.append((name, "must be a time in the years 1 to 9998"))
        except (ValueError, OverflowError):
            pass
    try:
        if "confirmed_at" in data and parse_time(data["confirmed_at"]) < received:
            problems.append(("confirmed_at", "is before received_at: a confirmation cannot precede the order"))
    except (ValueError, OverflowError):
        pass
    try:
        if "disclosed_at" in data and parse_time(data["disclosed_at"]) < received:
            problems.append(("disclosed_at", f"is before received_at ({data['received_at']}): "
                                             "a request cannot be answered before it was received"))
    except (ValueError, OverflowError):
        pass
    try:
        if "notice_due" in data and date.fromisoformat(data["notice_due"]) < received.date():
            problems.append(("notice_due", f"is before the day the request was received ({received.date().isoformat()}): "
                                           "notice cannot fall due before the request arrived"))
    except ValueError:
        pass
    return problems
