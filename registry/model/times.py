"""Times as the registry reads and writes them: RFC 3339 in UTC with a Z, and the window bounds
users give (RFC 3339, or a date meaning its midnight UTC)."""

from __future__ import annotations

from datetime import datetime, timezone

from registry.exceptions import InputError

__all__ = ["parse_time", "parse_bound", "format_time", "FIRST_YEAR", "LAST_YEAR"]

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
