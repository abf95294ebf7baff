"""The group's position as the store holds it, against the broker's end offsets: the lag that
``status``, the dashboard, the metrics and the worker's idle check all read, and the one case
where a stored offset goes back.

- ``stored_offsets`` / ``group_lag``: the applied offsets per partition, and what is left.
- ``offsets_ahead`` / ``rewind_stored``: a log that ends below the offset held for it (the topic
  was deleted and re-created, or the broker lost its log) is read again from its start; the
  store's ``(source, id)`` dedupe keeps records applied before from counting twice."""

from __future__ import annotations

import hashlib
from typing import Any, Container, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from registry.model.tables import ConsumerOffset

__all__ = ["Partition", "stored_offsets", "stored_topic_ids", "stored_last_records", "adopt_topic_id", "group_lag",
           "offsets_ahead", "rewind_stored", "fingerprint"]

Partition = tuple[str, int]  # (topic, partition)


def stored_offsets(engine: Engine, group: str) -> dict[Partition, int]:
    """Next offsets the store holds for ``group``, per partition."""
    t = ConsumerOffset
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.topic, t.c.partition, t.c.next_offset).where(t.c.group_id == group))
        return {(topic, partition): next_offset for topic, partition, next_offset in rows}


def group_lag(stored: Mapping[Partition, int], ends: Mapping[Partition, int]) -> dict[Partition, int]:
    """Records not yet applied per partition of ``ends`` (a partition the store never saw starts
    at 0: a topic's offsets start there and this registry never deletes records)."""
    return {p: max(0, end - stored.get(p, 0)) for p, end in sorted(ends.items())}


def offsets_ahead(held: Mapping[Partition, int], ends: Mapping[Partition, int], confirmed: Container[Partition]) -> dict[Partition, int]:
    """The partitions whose held next offset is past the broker's end, with that offset. Only ends
    the broker confirmed count (``EndOffsets``): an end read short would rewind a partition that
    is fine."""
    return {p: n for p, n in sorted(held.items()) if p in ends and p in confirmed and n > ends[p]}


def stored_topic_ids(engine: Engine, group: str) -> dict[Partition, str | None]:
    """The broker's topic id each stored offset of ``group`` belongs to (None: not known)."""
    t = ConsumerOffset
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.topic, t.c.partition, t.c.topic_id).where(t.c.group_id == group))
        return {(topic, partition): topic_id for topic, partition, topic_id in rows}


def stored_last_records(engine: Engine, group: str) -> dict[Partition, str | None]:
    """The fingerprint of the last record each stored offset of ``group`` applied (None: not known)."""
    t = ConsumerOffset
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.topic, t.c.partition, t.c.last_record).where(t.c.group_id == group))
        return {(topic, partition): last for topic, partition, last in rows}


def fingerprint(record: Any) -> str:
    """What tells one Kafka record (``.timestamp``, ``.key``, ``.value``) from another at the same
    offset of a re-created topic: its timestamp and a hash of its key and value."""
    digest = hashlib.sha256()
    for part in (record.key, record.value):
        digest.update(b"-" if part is None else b"%d:" % len(part) + bytes(part))
    return f"{record.timestamp}:{digest.hexdigest()[:32]}"


def adopt_topic_id(engine: Engine, group: str, p: Partition, topic_id: str, seen: int) -> None:
    """``p``'s row, written without a topic id (a new partition, or offsets stored before ids
    were kept), takes the id the broker reports now: only once its last record was verified (or
    nothing was applied), and only if its offset is still ``seen``."""
    t = ConsumerOffset
    with engine.begin() as conn:
        conn.execute(sa.update(t).where(t.c.group_id == group, t.c.topic == p[0], t.c.partition == p[1], t.c.next_offset == seen,
                                        t.c.topic_id.is_(None)).values(topic_id=topic_id))


def rewind_stored(engine: Engine, group: str, p: Partition, seen: int, to: int, topic_id: str | None = None) -> bool:
    """Set ``p``'s stored next offset back to ``to`` (and its topic id to the new topic's), if it
    is still ``seen`` (another member may have rewound it, and applied records since). The only
    write that moves an offset back."""
    t = ConsumerOffset
    values: dict[str, object] = {"next_offset": to, "last_record": None}
    if topic_id is not None:
        values["topic_id"] = topic_id
    with engine.begin() as conn:
        done = conn.execute(sa.update(t).where(t.c.group_id == group, t.c.topic == p[0], t.c.partition == p[1],
                                               t.c.next_offset == seen).values(**values))
    return bool(done.rowcount)
