"""Times as the registry reads and writes them: RFC 3339 in UTC with a Z, and the window bounds
users give (RFC 3339, or a date meaning its midnight UTC)."""

from __future__ import annotations

from datetime import datetime, timezone

from registry.exceptions import InputError

__all__ = ["parse_time", "parse_bound", "format_time"]


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
            return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)
        return parse_time(text)
    except (ValueError, OverflowError):
        raise InputError("not an RFC 3339 time or a date", name) from None


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z, as every output of the registry writes times."""
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
