"""Small builders for hand-written events in tests."""

from __future__ import annotations

from typing import Any

import orjson

from registry.events import RawRecord
from registry.subjects import subject_ref


def transfer(event_id: str, time: str = "2026-03-01T10:00:00Z", source: str = "//services/web", **data: Any) -> dict[str, Any]:
    body = {"recipient": "google-analytics", "data_categories": ["user.device.cookie_id"],
            "purpose": "analytics.reporting", "legal_basis": "consent"}
    body.update(data)
    return {"specversion": "1.0", "id": event_id, "source": source, "type": "registry.transfer.v1", "time": time, "data": body}


def record(event: dict[str, Any] | bytes) -> RawRecord:
    return RawRecord(value=event if isinstance(event, bytes) else orjson.dumps(event))


def ref(stable_id: str) -> str:
    return subject_ref(stable_id, "test-subject-key")
