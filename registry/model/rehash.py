"""Recomputing stored events' payload hashes from their stored bodies, with the function decoding
uses (``events.payload_hash``), so that stored and incoming hashes agree after the canonical form
changes (migrations 0005 and 0008). Bodies are read page by page in key order (a large store is
not held in memory); a body that does not parse keeps its hash."""

from __future__ import annotations

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .canonical import payload_hash
from .times import parse_time

__all__ = ["rehash_events"]

_PAGE = 5000
_COUNTS = ("record_count", "subject_count")


def _canonical_hash(body: str) -> str | None:
    try:
        envelope = orjson.loads(body)
        data = dict(envelope["data"])
        for name in _COUNTS:  # as decoding stores them: 7.0 counted as 7
            if isinstance(data.get(name), float):
                data[name] = int(data[name])
        return payload_hash(envelope["type"], parse_time(envelope["time"]), data)
    except (ValueError, KeyError, TypeError, OverflowError):
        return None


def rehash_events(conn: Connection) -> int:
    """Every stored event's hash recomputed; the number of hashes that changed. Paged by the
    idempotency key ``(event_id, source)``, which every schema version keeps unique."""
    after: tuple[str, str] = ("", "")
    changed = 0
    while True:
        rows = conn.execute(sa.text("SELECT event_id, source, body, payload_hash FROM event "
                                    "WHERE event_id > :e OR (event_id = :e AND source > :s) "
                                    f"ORDER BY event_id, source LIMIT {_PAGE}"), {"e": after[0], "s": after[1]}).fetchall()
        if not rows:
            return changed
        changes = [{"e": event_id, "s": source, "h": new} for event_id, source, body, old in rows
                   for new in (_canonical_hash(body),) if new is not None and new != old]
        if changes:
            conn.execute(sa.text("UPDATE event SET payload_hash = :h WHERE event_id = :e AND source = :s"), changes)
            changed += len(changes)
        after = (rows[-1][0], rows[-1][1])
