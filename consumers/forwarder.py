"""Forwarding refused records to the dead-letter topic (contract §3), once per batch in hand.

The worker forwards the records that decoding refuses (nearly all dead letters) before the
batch's database transaction opens, so waiting for the broker's acknowledgement never holds a
transaction open (on SQLite, other writers would wait on its lock for as long as the broker does
not answer). Only what the database decides (a conflicting duplicate found in the store, a value
the database refuses) is forwarded inside the transaction, before it commits. Either way every
dead letter is acknowledged before the batch's offsets commit.

A batch retried after an outage comes round again with the same records: those already
acknowledged are not sent twice. That memory lasts until the batch commits; a crash between an
acknowledgement and the commit re-sends on redelivery (at least once)."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from kafka import KafkaProducer

from registry.intake.ingest import DeadRecord
from registry.model.events import MAX_EVENT_BYTES, header_bytes, record_size

__all__ = ["ACK_TIMEOUT_SECONDS", "DeadLetterForwarder", "dlq_headers", "dlq_value"]

ACK_TIMEOUT_SECONDS = 30.0  # one ack; a broker gone longer is an outage (the batch is retried)

Where = tuple[str | None, int | None, int | None]  # (topic, partition, offset) of the refused record


class DeadLetterForwarder:
    def __init__(self, producer: KafkaProducer, topic: str, ack_timeout: float = ACK_TIMEOUT_SECONDS) -> None:
        self.producer, self.topic, self.ack_timeout = producer, topic, ack_timeout
        self._acked: set[Where] = set()  # of the batch in hand

    def forward(self, dead: Iterable[DeadRecord], keys: Mapping[Where, Any]) -> None:
        """Send the records not yet acknowledged, with the message keys they arrived with, and
        wait for each ack (a failure propagates: the batch is retried)."""
        pending = {_where(d): d for d in dead}
        futures = [(where, self.producer.send(self.topic, key=_key(keys.get(where), d), value=dlq_value(d), headers=dlq_headers(d)))
                   for where, d in pending.items() if where not in self._acked]
        failure: Exception | None = None
        for where, future in futures:  # every ack is awaited, so one failure does not resend the others
            try:
                future.get(timeout=self.ack_timeout)
            except Exception as exc:  # noqa: BLE001  re-raised below, after the rest are known
                failure = failure or exc
            else:
                self._acked.add(where)
        if failure is not None:
            raise failure

    def committed(self) -> None:
        """The batch and its offsets committed: its records will not come round again."""
        self._acked.clear()


def _where(dead: DeadRecord) -> Where:
    return dead.record.topic, dead.record.partition, dead.record.offset


def _key(key: Any, dead: DeadRecord) -> Any:
    """The original key; an unkeyed tombstone is forwarded with an empty key (the client refuses
    a record with neither key nor value)."""
    return b"" if key is None and dead.record.value is None else key


def dlq_value(dead: DeadRecord) -> bytes | None:
    """The original value, cut so that the whole dead-letter record fits in 1 MiB (contract §3): a
    record the broker accepted at any size must not become a dead letter the producer cannot
    send (the worker would retry it as an outage for ever). A tombstone stays a tombstone."""
    return _capped(dead)[0]


def dlq_headers(dead: DeadRecord) -> list[tuple[str, bytes]]:
    """The original headers (as many as fit in 1 MiB with the value and the ``dlq_*`` headers)
    and the ``dlq_*`` headers. ``dlq_truncated`` (the original value's size) says something was
    cut; ``dlq_truncated_headers`` (the original headers' size) that original headers were cut or
    dropped."""
    return _capped(dead)[1]


def _capped(dead: DeadRecord) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    r = dead.record
    own = [("dlq_reason", dead.reason.encode()), ("dlq_detail", dead.detail[:1000].encode()),
           ("dlq_topic", (r.topic or "").encode()), ("dlq_partition", str(r.partition).encode()),
           ("dlq_offset", str(r.offset).encode())]
    original = list(r.headers or ())
    if record_size(r) + header_bytes(own) <= MAX_EVENT_BYTES:
        return r.value, [*original, *own]
    marks = [("dlq_truncated", str(len(r.value or b"")).encode()),
             ("dlq_truncated_headers", str(header_bytes(original)).encode())]
    room = MAX_EVENT_BYTES - header_bytes(own) - header_bytes(marks)
    value = r.value if r.value is None else r.value[:room]  # the value first: it is the evidence
    room -= len(value or b"")
    kept: list[tuple[str, bytes]] = []
    for name, data in original:
        size = len(name.encode("utf-8", "replace"))
        if size >= room:
            break
        kept.append((name, data if data is None else bytes(data)[:room - size]))
        room -= header_bytes(kept[-1:])
    if kept == original:
        marks.pop()
    return value, [*kept, *own, *marks]
