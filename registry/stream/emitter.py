"""The producer SDK: services call ``Emitter.transfer`` / ``Emitter.disclosure`` and the event is
validated here, before it is sent, so a bad call fails at the caller instead of becoming a dead
letter later."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.v1.event import CloudEvent

from registry.exceptions import BrokerError, EventError
from registry.model.events import DISCLOSURE, MAX_EVENT_BYTES, TRANSFER, EventValidator, RawRecord
from registry.model.taxonomy import Taxonomy

from .kafka import MAX_REQUEST_BYTES, Mode, Topics, ensure_topics
from .kafka import bootstrap_servers as resolve_bootstrap

__all__ = ["Emitter"]


class Emitter:
    """Publishes registry events to Kafka (``acks=all``).

    ``taxonomy`` (or ``manifest``, a manifest file whose extensions to use) decides which keys
    are known; by default the fideslang default taxonomy."""

    def __init__(self, source: str, *, bootstrap_servers: str | None = None, mode: Mode = "structured",
                 topics: Topics = Topics(), taxonomy: Taxonomy | None = None, manifest: str | Path | None = None,
                 create_topics: bool = True, **producer_options: Any) -> None:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        if manifest is not None:
            from registry.model.manifest import load_manifest

            taxonomy = load_manifest(manifest).taxonomy_view()
        self.source, self.mode, self.topics = source, mode, topics
        self._validator = EventValidator(taxonomy)
        bootstrap = resolve_bootstrap(bootstrap_servers)
        if create_topics:
            ensure_topics(bootstrap, topics)
        try:
            self._producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5,
                                           max_request_size=MAX_REQUEST_BYTES, **producer_options)
        except KafkaError as exc:
            raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc}") from None

    def transfer(self, *, recipient: str, data_categories: list[str], purpose: str, legal_basis: str,
                 event_id: str | None = None, time: datetime | None = None, **optional: Any) -> str:
        """Record that personal data left this service for ``recipient``. Returns the event id.
        Optional fields: data_subjects, activity, destination_country, transfer_mechanism,
        subject_refs (see ``subject_ref``), record_count."""
        data = {"recipient": recipient, "data_categories": data_categories, "purpose": purpose,
                "legal_basis": legal_basis, **{k: v for k, v in optional.items() if v is not None}}
        return self._send(TRANSFER, data, None, event_id, time)

    def disclosure(self, *, request_id: str, event_id: str | None = None, time: datetime | None = None, **fields: Any) -> str:
        """Record one snapshot of an authority's disclosure request (contract §2)."""
        data = {"request_id": request_id, **{k: v for k, v in fields.items() if v is not None}}
        return self._send(DISCLOSURE, data, request_id, event_id, time)

    def _send(self, kind: str, data: dict[str, Any], key: str | None, event_id: str | None, time: datetime | None) -> str:
        """``key`` None: a transfer, keyed by ``source/id`` (contract §3 v3), so the load spreads over
        all partitions and a redelivery lands where the original did."""
        event_id = event_id or str(uuid.uuid4())
        if key is None:
            key = f"{self.source}/{event_id}"
        event = CloudEvent(attributes={
            "specversion": "1.0", "id": event_id, "source": self.source, "type": kind,
            "time": (time or datetime.now(timezone.utc)).astimezone(timezone.utc), "datacontenttype": "application/json",
        }, data=data)
        convert = ce_kafka.to_binary_event if self.mode == "binary" else ce_kafka.to_structured_event
        message = convert(event, key_mapper=lambda _e: key)
        headers = [(k, v) for k, v in message.headers.items()]
        record = RawRecord(value=message.value, headers=headers)
        if len(message.value) > MAX_EVENT_BYTES:
            raise EventError("too_large", f"{len(message.value)} bytes is over the 1 MiB limit")
        self._validator.decode(record)  # raises EventError naming the field
        self._producer.send(self.topics.for_type(kind), key=key.encode(), value=message.value, headers=headers)
        return str(event.get_id())

    def flush(self, timeout: float | None = None) -> None:
        self._producer.flush(timeout)

    def close(self) -> None:
        self._producer.flush()
        self._producer.close()

    def __enter__(self) -> "Emitter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
