"""The two event types and the canonical form of an event: what makes a redelivery the same
event (contract §2) whatever client re-serialised it."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import orjson

from .times import parse_time

__all__ = ["TRANSFER", "DISCLOSURE", "payload_hash"]

TRANSFER = "registry.transfer.v1"
DISCLOSURE = "registry.disclosure.v1"
_DATA_TIMES = ("received_at", "disclosed_at", "confirmed_at")


def payload_hash(kind: str, moment: datetime, data: dict[str, Any]) -> str:
    """The hash of the canonical event (contract §2): its type, its time as a UTC instant and its
    data as parsed values (keys sorted, no whitespace, the data's own times as UTC instants too,
    the schema's defaults filled in: ``record_count`` 1 spelt out or left out is one event).
    A redelivery re-serialised by another client (``Z`` or ``+00:00``, key order, whitespace,
    binary or structured mode) hashes the same; a different payload does not."""
    canonical = data
    times = [name for name in _DATA_TIMES if isinstance(data.get(name), str)]
    defaults = _defaults(kind, data)
    if times or defaults:
        canonical = {**data, **defaults}
        for name in times:
            try:
                canonical[name] = parse_time(data[name]).isoformat()
            except (ValueError, OverflowError):
                pass  # not a time: hashed as given
    digest = hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS))
    digest.update(f"|{kind}|{moment.isoformat()}".encode())
    return digest.hexdigest()


def _defaults(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    """The schema's defaults (contract §2) of the fields ``data`` leaves out: an event that spells
    a default out is the same event."""
    if kind == TRANSFER:
        return {} if "record_count" in data else {"record_count": 1}
    if kind == DISCLOSURE:
        out: dict[str, Any] = {} if "emergency" in data else {"emergency": False}
        if "subject_count" not in data:
            refs = data.get("subject_refs")
            out["subject_count"] = len(refs) if isinstance(refs, list) else 0
        return out
    return {}
