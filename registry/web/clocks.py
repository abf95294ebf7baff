"""The e-Evidence clocks as pages show them: open requests by due time, each with a countdown
(hours and minutes for an emergency or under two days, else days) and overdue in words."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from registry.ledger.disclosures import Disclosure, row_clock
from registry.model.times import parse_time

__all__ = ["clock_view", "open_clocks", "countdown"]


def countdown(seconds: float, emergency: bool = False) -> str:
    """``7 h 59 min left``, ``9 days 23 h left``, ``overdue by 2 h 5 min``: the same words the
    page's script writes when it ticks."""
    left = abs(int(seconds)) // 60
    days, hours, minutes = left // 1440, left % 1440 // 60, left % 60
    if emergency or days < 2:
        text = f"{days * 24 + hours} h {minutes} min"
    else:
        text = f"{days} days {hours} h"
    return f"{text} left" if seconds > 0 else f"overdue by {text}"


def clock_view(row: Disclosure, now: datetime) -> dict[str, Any] | None:
    """What the clock partial needs for one request, or None when it has no running clock."""
    if row.due_at is None:
        return None
    state = row_clock(row, now)
    seconds = (parse_time(row.due_at) - now).total_seconds()
    production = row.instrument == "eu_production_order"
    return {"request_id": row.request_id, "authority": row.authority, "instrument": row.instrument, "emergency": row.emergency,
            "due_at": row.due_at, "state": state or "closed", "seconds": seconds,
            "what": ("data due" if production else "preservation lapses"),
            "text": countdown(seconds, row.emergency) if state else ("answered" if production else "closed")}


def open_clocks(rows: list[Disclosure], now: datetime) -> list[dict[str, Any]]:
    """Open requests with a clock, soonest (or most overdue) first."""
    views = [v for r in rows if (v := clock_view(r, now)) is not None and v["state"] != "closed"]
    return sorted(views, key=lambda v: (v["seconds"], v["request_id"]))
