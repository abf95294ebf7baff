"""Kafka plumbing shared by the emitter, ``publish`` and the consumer worker: topic names,
bootstrap servers, topic creation, and CloudEvents ↔ Kafka records (contract §3)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Iterable, Literal

import orjson

from registry.model.events import DISCLOSURE, lines_of

__all__ = ["Topics", "bootstrap_servers", "ensure_topics", "to_kafka", "send_lines", "Mode", "MAX_REQUEST_BYTES"]

Mode = Literal["structured", "binary"]
DEFAULT_BOOTSTRAP = "localhost:9092"
# Producers may send records over the 1 MiB event limit (the consumer dead-letters them as
# too_large); the client's own 1 MiB cap would refuse them before they reach the registry.
MAX_REQUEST_BYTES = 8 * 1024 * 1024
_CE_ATTRIBUTES = ("specversion", "id", "source", "type", "time", "subject", "dataschema")


@dataclass(frozen=True)
class Topics:
    transfers: str = "dataflow.transfers"
    disclosures: str = "dataflow.disclosures"
    dead_letter: str = "dataflow.dead-letter"

    def for_type(self, event_type: object) -> str:
        return self.disclosures if event_type == DISCLOSURE else self.transfers


def bootstrap_servers(value: str | None = None) -> str:
    return value or os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP


def ensure_topics(bootstrap: str, topics: Topics, partitions: int = 3) -> None:
    """Create missing topics (data topics with ``partitions``, the dead-letter topic with 1)."""
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic
    from kafka.errors import KafkaError, TopicAlreadyExistsError

    from registry.exceptions import BrokerError

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="dataflow-registry-admin", bootstrap_timeout_ms=10_000)
    except KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc}") from None
    try:
        existing = set(admin.list_topics())
        wanted = {topics.transfers: partitions, topics.disclosures: partitions, topics.dead_letter: 1}
        missing = [NewTopic(name, n, 1) for name, n in wanted.items() if name not in existing]
        if missing:
            try:
                admin.create_topics(missing)
            except TopicAlreadyExistsError:
                pass  # another process created it meanwhile
    finally:
        admin.close()


def to_kafka(line: bytes, mode: Mode) -> tuple[Any, bytes | None, bytes, list[tuple[str, bytes]]]:
    """(event type, key, value, headers) for one structured JSON line. Lines that are not a
    structured envelope with an object ``data`` go as they are (the consumer judges them)."""
    try:
        envelope = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None, None, line, [("content-type", b"application/cloudevents+json")]
    if not isinstance(envelope, dict):
        return None, None, line, [("content-type", b"application/cloudevents+json")]
    data = envelope.get("data")
    key = None
    if envelope.get("type") == DISCLOSURE:
        # a request's versions stay in one partition, in order
        raw_key = data.get("request_id") if isinstance(data, dict) else None
        key = raw_key.encode() if isinstance(raw_key, str) else None
    elif isinstance(envelope.get("source"), str) and isinstance(envelope.get("id"), str):
        # contract §3 (v3): transfers by source/id: spread over all partitions, a redelivery lands
        # where the original did (and so meets it in the same worker)
        key = f"{envelope['source']}/{envelope['id']}".encode()
    if mode == "binary" and isinstance(data, dict) and all(isinstance(envelope.get(a), str) for a in ("id", "source", "type")):
        headers = [(f"ce_{a}", str(envelope[a]).encode()) for a in _CE_ATTRIBUTES if a in envelope]
        headers.append(("content-type", b"application/json"))
        return envelope.get("type"), key, orjson.dumps(data), headers
    return envelope.get("type"), key, line, [("content-type", b"application/cloudevents+json")]


def send_lines(lines: Iterable[bytes], *, bootstrap: str, topics: Topics, mode: Mode, partitions: int = 3) -> int:
    """``registry publish``: send JSON Lines of structured events as they are (not validated:
    the consumer is where events are judged, so poison lines reach the dead-letter topic)."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from registry.exceptions import BrokerError

    ensure_topics(bootstrap, topics, partitions)
    try:
        producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=256 * 1024,
                                 max_request_size=MAX_REQUEST_BYTES)
    except KafkaError as exc:
        raise BrokerError(f"cannot reach Kafka at {bootstrap}: {exc}") from None
    count = 0
    try:
        for record in lines_of(lines):
            kind, key, value, headers = to_kafka(record.value or b"", mode)  # lines are never tombstones
            producer.send(topics.for_type(kind), key=key, value=value, headers=headers)
            count += 1
        producer.flush()
    finally:
        producer.close()
    return count

