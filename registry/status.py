"""``registry status`` (contract §3): where a consumer group stands, per partition, against the
broker's end offsets, with the store's totals. Shared by the CLI, the dashboard page and the
worker's lag gauge. Without the broker, end offsets and lag are null."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Iterable

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from .kafka import Topics, bootstrap_servers

__all__ = ["PartitionStatus", "GroupStatus", "end_offsets", "group_status", "broker_end_offsets"]

log = logging.getLogger("registry.status")
END_OFFSETS_TIMEOUT_MS = 5000


class PartitionStatus(BaseModel):
    topic: str
    partition: int
    stored_offset: int | None
    end_offset: int | None
    lag: int | None


class GroupStatus(BaseModel):
    group: str
    lag: int | None
    partitions: list[PartitionStatus]
    events: int
    dead_letters: int
    last_event_time: datetime | None
    manifest_version: int | None


def end_offsets(consumer: Any, topics: Iterable[str], timeout_ms: int = END_OFFSETS_TIMEOUT_MS) -> dict[tuple[str, int], int]:
    """End offsets of every partition of ``topics``, through a kafka-python consumer (any: it
    need not own the partitions). Raises KafkaError when the broker does not answer."""
    from kafka import TopicPartition
    from kafka.errors import KafkaTimeoutError

    partitions = []
    for topic in topics:
        ids = consumer.partitions_for_topic(topic)
        if not ids:
            raise KafkaTimeoutError(f"no partitions known for {topic}")  # metadata not there: lag unknown
        partitions += [TopicPartition(topic, p) for p in sorted(ids)]
    ends = consumer.end_offsets(partitions, timeout_ms=timeout_ms)
    return {(tp.topic, tp.partition): int(n) for tp, n in ends.items()}


def broker_end_offsets(bootstrap: str | None, topics: Iterable[str]) -> dict[tuple[str, int], int] | None:
    """End offsets from a short-lived client, or None when the broker cannot be reached."""
    from kafka import KafkaConsumer
    from kafka.errors import KafkaError

    try:
        consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers(bootstrap), group_id=None, enable_auto_commit=False,
                                 request_timeout_ms=END_OFFSETS_TIMEOUT_MS + 1000, api_version_auto_timeout_ms=3000)
    except (KafkaError, OSError) as exc:
        log.warning("broker_unreachable", extra={"fields": {"error": f"{exc.__class__.__name__}: {exc}"}})
        return None
    try:
        return end_offsets(consumer, topics)
    except (KafkaError, OSError) as exc:
        log.warning("broker_unreachable", extra={"fields": {"error": f"{exc.__class__.__name__}: {exc}"}})
        return None
    finally:
        consumer.close(autocommit=False)


def group_status(engine: Engine, group: str = "dataflow-registry", topics: Topics | None = None,
                 bootstrap: str | None = None, ends: dict[tuple[str, int], int] | None = None,
                 ask_broker: bool = True) -> GroupStatus:
    """The group's partitions (those the broker lists, plus any the store holds offsets for),
    each with stored and end offsets and lag; lag totals null unless the broker answered."""
    from consumers.offsets import group_lag, stored_offsets

    topics = topics or Topics()
    if ends is None and ask_broker:
        ends = broker_end_offsets(bootstrap, [topics.transfers, topics.disclosures])
    stored = stored_offsets(engine, group)
    lags = group_lag(stored, ends) if ends is not None else {}
    keys = sorted(set(stored) | set(ends or {}))
    partitions = [PartitionStatus(topic=t, partition=p, stored_offset=stored.get((t, p)),
                                  end_offset=(ends or {}).get((t, p)), lag=lags.get((t, p))) for t, p in keys]
    with engine.connect() as conn:
        events = conn.exec_driver_sql("SELECT COUNT(*) FROM event").scalar_one()
        dead = conn.exec_driver_sql("SELECT COUNT(*) FROM dead_letter WHERE status = 'dead'").scalar_one()
        last = conn.execute(sa.text("SELECT MAX(time) FROM event").columns(sa.column("m", sa.DateTime(timezone=True)))).scalar()
        version = conn.exec_driver_sql("SELECT MAX(version) FROM manifest_version").scalar()
    if isinstance(last, str):  # SQLite keeps UTC text
        last = datetime.fromisoformat(last)
    if last is not None and last.tzinfo is None:
        from datetime import timezone

        last = last.replace(tzinfo=timezone.utc)
    return GroupStatus(group=group, lag=sum(lags.values()) if ends is not None else None, partitions=partitions,
                       events=events, dead_letters=dead, last_event_time=last, manifest_version=version)
