"""Strict questions (contract §6, v3): an answer is never empty because of a typo. The CLI, the
API and the pages call the same question functions, and those call these checks first, so a
key that is neither declared nor observed, or a window that holds no instant, is an InputError
(exit 2, 422) naming the closest keys instead of an empty answer."""

from __future__ import annotations

import difflib
from datetime import datetime
from typing import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from registry.exceptions import InputError
from registry.model.declarations import versions
from registry.model.events import REASONS
from registry.model.tables import FlowDay
from registry.model.taxonomy import covers, default_taxonomy, valid_key
from registry.model.times import format_time

__all__ = ["check_window", "check_category", "check_recipient", "check_reason", "did_you_mean"]


def did_you_mean(key: str, known: Iterable[str]) -> str:
    """`` (did you mean a, b?)`` with the closest known keys, or '' when none is close."""
    close = difflib.get_close_matches(key, sorted(set(known)), n=3, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def check_window(since: datetime | None, until: datetime | None, as_of: datetime | None = None) -> None:
    """A window that holds no instant is a mistake, not a question whose answer is "nothing"."""
    if since is not None and until is not None and since >= until:
        raise InputError(f"the window is empty: since ({format_time(since)}) must be before until ({format_time(until)})")
    if since is not None and as_of is not None and since >= as_of:
        raise InputError(f"the window is empty: since ({format_time(since)}) must be before as_of ({format_time(as_of)})")


def check_reason(reason: str | None, name: str) -> None:
    """A dead-letter reason to filter by: an unknown one would always answer "none"."""
    if reason is not None and reason not in REASONS:
        raise InputError(f"unknown reason {reason!r}{did_you_mean(reason, REASONS)}: the reasons are {', '.join(REASONS)}", name)


def _observed(conn: Connection, column: str) -> set[str]:
    d = FlowDay
    return {v for (v,) in conn.execute(sa.select(d.c[column]).distinct())}


def check_category(conn: Connection, category: str) -> None:
    """``category`` is a key of the taxonomy (with any declared version's extensions), or covers
    a category that was observed."""
    if not valid_key(category):
        raise InputError(f"unknown category {category!r}: a category key looks like user.contact.email")
    known = set(default_taxonomy().keys("data_categories"))
    for _, manifest in versions(conn):
        known |= manifest.taxonomy_view().keys("data_categories")
    if category in known:
        return
    observed = {c for joined in _observed(conn, "categories") for c in joined.split(",")}
    if any(covers(category, c) for c in observed):
        return
    raise InputError(f"unknown category {category!r}{did_you_mean(category, known | observed)}")


def check_recipient(conn: Connection, key: str) -> None:
    """``key`` was declared in some manifest version or observed at some time."""
    known = {r.key for _, manifest in versions(conn) for r in manifest.recipients}
    if key in known:
        return
    observed = _observed(conn, "recipient")
    if key in observed:
        return
    raise InputError(f"unknown recipient {key!r}: neither declared nor observed{did_you_mean(key, known | observed)}")
