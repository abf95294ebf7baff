"""The clocks of Regulation (EU) 2023/1543 (e-Evidence), computed from a request's snapshot and
never typed in: when the data of a European Production Order is due, when a European
Preservation Order lapses, and the warnings a legal team needs before and after those times."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from registry.model.times import format_time, parse_time

__all__ = ["EU", "PRODUCTION", "PRESERVATION", "NEAR", "due_at", "is_open", "clock_state", "hours_left",
           "deadline_warning", "eu_authority_warning", "late_disclosure_warning",
           "clock_error_warning"]

PRODUCTION = "eu_production_order"
PRESERVATION = "eu_preservation_order"
# The 27 member states: the Regulation binds orders of their authorities, not of Iceland,
# Liechtenstein or Norway (EEA but not EU), which GDPR Art. 48 does not treat as third countries.
EU = frozenset("AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE".split())
NEAR = timedelta(hours=24)  # "near" a deadline: the same 24 hours as the metric's due_24h

_PRODUCTION_DAYS = timedelta(days=10)  # Art. 10(2)
_EMERGENCY = timedelta(hours=8)  # Art. 10(4)
_PRESERVATION_DAYS = timedelta(days=60)  # Art. 11(1)
_EXTENSION_DAYS = timedelta(days=30)  # Art. 11(1), the confirmation or extension (Annex VI)


def due_at(data: dict[str, Any]) -> datetime | None:
    """The instant the request's clock runs out (UTC), or None for instruments without one and
    for a stored time the clock cannot be computed from (see :func:`clock_error_warning`)."""
    try:
        return _due_at(data)
    except (ValueError, OverflowError):
        # the ledger is append-only: an entry stored before intake refused such times must not
        # take every list, report, page and scrape down with it
        return None


def _due_at(data: dict[str, Any]) -> datetime | None:
    instrument = data["instrument"]
    if instrument == PRODUCTION:
        return parse_time(data["received_at"]) + (_EMERGENCY if data.get("emergency") else _PRODUCTION_DAYS)
    if instrument == PRESERVATION:
        if data.get("confirmed_at"):
            return parse_time(data["confirmed_at"]) + _EXTENSION_DAYS
        return parse_time(data["received_at"]) + _PRESERVATION_DAYS
    return None


def clock_error_warning(data: dict[str, Any]) -> str | None:
    """An EU order whose clock cannot be computed from its stored times (e.g. a year 9999)."""
    if data["instrument"] not in (PRODUCTION, PRESERVATION) or due_at(data) is not None:
        return None
    field = "confirmed_at" if data["instrument"] == PRESERVATION and data.get("confirmed_at") else "received_at"
    return (f"{data['request_id']}: no e-Evidence clock: {field} {data.get(field)} is outside the times a clock can be "
            f"computed for; log a corrected snapshot")


def is_open(data: dict[str, Any]) -> bool:
    """Still to be answered: outcome pending and nothing disclosed yet."""
    return data["outcome"] == "pending" and not data.get("disclosed_at")


ClockState = Literal["overdue", "due_24h", "running"]


def clock_state(data: dict[str, Any], now: datetime, due: datetime | None = None) -> ClockState | None:
    """overdue: open and its clock has run out; due_24h: open and it runs out within 24 hours;
    running: open with more time; None: closed or no clock. ``due``: already computed."""
    due = due or due_at(data)
    if due is None or not is_open(data):
        return None
    if due <= now:
        return "overdue"
    return "due_24h" if due - now <= NEAR else "running"


def hours_left(data: dict[str, Any], now: datetime) -> float | None:
    due = due_at(data)
    return None if due is None else (due - now).total_seconds() / 3600


def _hours(delta: timedelta) -> str:
    hours = abs(delta.total_seconds()) / 3600
    if hours >= 48:
        return f"{hours / 24:.1f} days"
    return f"{hours:.1f} hours"


def deadline_warning(data: dict[str, Any], now: datetime) -> str | None:
    """A missed or near e-Evidence clock of an open request."""
    state = clock_state(data, now)
    if state not in ("overdue", "due_24h"):
        return None
    due = due_at(data)
    assert due is not None
    rid, when, left = data["request_id"], format_time(due), _hours(due - now)
    if data["instrument"] == PRODUCTION:
        rule = "8 hours in an emergency" if data.get("emergency") else "10 days"
        if state == "overdue":
            return (f"{rid}: European Production Order data was due at {when} ({rule}, Regulation (EU) 2023/1543 "
                    f"Art. 10) and is {left} overdue")
        return f"{rid}: European Production Order data is due at {when}, in {left} ({rule}, Regulation (EU) 2023/1543 Art. 10)"
    rule = "30 days after the confirmation" if data.get("confirmed_at") else "60 days after receipt, unless confirmed"
    if state == "overdue":
        return (f"{rid}: European Preservation Order lapsed at {when} ({rule}, Regulation (EU) 2023/1543 Art. 11) "
                f"{left} ago: record confirmed_at if the authority confirmed, or close the request")
    return f"{rid}: European Preservation Order lapses at {when}, in {left} ({rule}, Regulation (EU) 2023/1543 Art. 11)"


def eu_authority_warning(data: dict[str, Any]) -> str | None:
    """An order under the Regulation comes from a member-state authority; anything else is not one."""
    if data["instrument"] not in (PRODUCTION, PRESERVATION) or data["authority_country"] in EU:
        return None
    return (f"{data['request_id']}: {data['instrument'].replace('_', ' ')} from {data['authority']} "
            f"({data['authority_country']}), not an EU member-state authority: not an order under Regulation (EU) 2023/1543")


def late_disclosure_warning(data: dict[str, Any]) -> str | None:
    """A production order answered after its clock ran out (a fact of the report, not of today)."""
    due = due_at(data)
    if due is None or data["instrument"] != PRODUCTION or not data.get("disclosed_at"):
        return None
    late = parse_time(data["disclosed_at"]) - due
    if late <= timedelta(0):
        return None
    return f"{data['request_id']}: European Production Order data disclosed {_hours(late)} after it was due at {format_time(due)}"
