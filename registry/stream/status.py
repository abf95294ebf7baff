"""``registry status`` (contract §3): where a consumer group stands, per partition, against the
broker's end offsets, with the store's totals. Shared by the CLI, the dashboard page and the
worker's lag gauge. Without the broker, end offsets and lag are null.

A stored offset past the broker's end (the topic was deleted and re-created, or the broker lost
its log) is shown as it is stored, and its lag counts from the log start: those are the records
a worker reads once it has reset the offset (``consumers.offsets.offsets_ahead``). Status only
reads; the worker resets."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from .kafka import Topics, bootstrap_servers

__all__ = ["PartitionStatus", "GroupStatus", "BrokerOffsets", "EndOffsets", "RecentOffsets", "group_status", "broker_offsets", "list_offsets"]

log = logging.getLogger("registry.status")
END_OFFSETS_TIMEOUT_MS = 5000
# Pages: a load waits at most this long for the broker (a live one on this machine answers in
# well under a second), and the answer, or its absence, is kept for a few seconds.
PAGE_TIMEOUT_MS = 1500
PAGE_CACHE_SECONDS = 10.0


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


@dataclass(frozen=True)
class BrokerOffsets:
    """The broker's answer for every partition of some topics."""

    ends: dict[tuple[str, int], int]
    starts: dict[tuple[str, int], int]  # log start offsets
    confirmed: frozenset[tuple[str, int]]  # ends checked by reading the last record (or empty partitions)


class EndOffsets:
    """End and log start offsets of every partition of some topics, read with a client of its own
    (no group).

    The broker's end (ListOffsets) is checked by reading the partition's last record batch:
    tansu 0.6.0, the test broker, answers the base offset of the last batch + 1, which hides the
    rest of that batch (measured: 500 records produced in one batch moved the end by 1). With
    Kafka the check reads the last record and changes nothing. An end whose check brought
    nothing back stays unconfirmed. Raises KafkaError when the broker does not answer."""

    def __init__(self, bootstrap: str | None = None, timeout_ms: int = END_OFFSETS_TIMEOUT_MS) -> None:
        self.bootstrap, self.timeout_ms = bootstrap_servers(bootstrap), timeout_ms
        self._probe: Any = None

    def _client(self) -> Any:
        from kafka import KafkaConsumer

        if self._probe is None:
            self._probe = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                        request_timeout_ms=self.timeout_ms + 1000, bootstrap_timeout_ms=self.timeout_ms,
                                        fetch_max_wait_ms=50, reconnect_backoff_max_ms=2000, allow_auto_create_topics=False,
                                        max_poll_records=100_000)  # a last batch whole, not its first 500
        return self._probe

    def __call__(self, topics: Iterable[str]) -> dict[tuple[str, int], int]:
        return self.read(topics).ends

    def read(self, topics: Iterable[str]) -> BrokerOffsets:
        from kafka.errors import KafkaError, KafkaTimeoutError

        try:
            return self._read(list(topics))
        except KafkaError:
            self.close()  # a fresh client next time
            raise
        except (KeyError, AssertionError, OSError) as exc:
            # kafka-python 3.0.x raises KeyError from end_offsets when a broker answers for only
            # some partitions (seen while the broker was cut off): the same as no answer
            self.close()
            raise KafkaTimeoutError(f"incomplete end offsets: {exc.__class__.__name__}: {exc}") from None

    def _read(self, topics: list[str]) -> BrokerOffsets:

        probe = self._client()
        partitions, ends, starts = list_offsets(probe, topics, self.timeout_ms)
        filled = [tp for tp in partitions if ends.get(tp, 0) > 0]
        pending = set(filled)  # an end counts as confirmed once reading from it reached the log's end
        if filled:
            probe.assign(filled)
            for tp in filled:
                probe.seek(tp, ends[tp] - 1)
            read: set[Any] = set()
            for _ in range(6):
                # the first wait is for the data; after it, a short poll that brings nothing means
                # every partition read so far is at its end (a batch may have come back in part)
                polled = probe.poll(timeout_ms=500 if not read else 150)
                if not polled and read:
                    pending -= read
                    break
                for tp, records in polled.items():
                    ends[tp] = max(ends[tp], max(r.offset for r in records) + 1)
                    read.add(tp)
            probe.assign([])
        return BrokerOffsets(ends={(tp.topic, tp.partition): n for tp, n in sorted(ends.items())},
                             starts={(tp.topic, tp.partition): n for tp, n in sorted(starts.items())},
                             confirmed=frozenset((tp.topic, tp.partition) for tp in partitions if tp not in pending))

    def close(self) -> None:
        if self._probe is not None:
            probe, self._probe = self._probe, None
            try:
                probe.close(autocommit=False)
            except Exception:  # closing a client whose broker is gone: nothing to keep
                pass


def list_offsets(client: Any, topics: Iterable[str], timeout_ms: int = END_OFFSETS_TIMEOUT_MS) -> tuple[list[Any], dict[Any, int], dict[Any, int]]:
    """(every partition of ``topics``, their end offsets, their log start offsets) as a Kafka
    client's ListOffsets answers them (no record is read). KafkaTimeoutError while a topic's
    metadata is not there (the lag is unknown then)."""
    from kafka import TopicPartition
    from kafka.errors import KafkaTimeoutError

    partitions = []
    for topic in topics:
        found = client.partitions_for_topic(topic)
        if not found:
            raise KafkaTimeoutError(f"no partitions known for {topic}")
        partitions += [TopicPartition(topic, p) for p in sorted(found)]
    ends = {tp: int(n) for tp, n in client.end_offsets(partitions, timeout_ms=timeout_ms).items()}
    starts = {tp: int(n) for tp, n in client.beginning_offsets(partitions, timeout_ms=timeout_ms).items()}
    return partitions, ends, starts


def broker_offsets(bootstrap: str | None, topics: Iterable[str], timeout_ms: int = END_OFFSETS_TIMEOUT_MS) -> BrokerOffsets | None:
    """The broker's offsets from a short-lived client, or None when the broker cannot be reached."""
    from kafka.errors import KafkaError

    reader = EndOffsets(bootstrap, timeout_ms)
    try:
        return reader.read(topics)
    except (KafkaError, OSError) as exc:
        log.warning("broker_unreachable", extra={"fields": {"error": f"{exc.__class__.__name__}: {exc}"}})
        return None
    finally:
        reader.close()


class RecentOffsets:
    """``broker_offsets`` for pages: asked with a short timeout, the answer (or None: the broker
    did not answer) reused for ``seconds``, so that a broker that is down costs one short wait per
    window rather than a long one per load. ``registry status`` asks each time instead."""

    def __init__(self, seconds: float = PAGE_CACHE_SECONDS, timeout_ms: int = PAGE_TIMEOUT_MS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds, self.timeout_ms, self.clock = seconds, timeout_ms, clock
        self._lock = threading.Lock()  # concurrent loads wait for one answer instead of each asking
        self._answers: dict[tuple[str, tuple[str, ...]], tuple[float, BrokerOffsets | None]] = {}

    def __call__(self, bootstrap: str | None, topics: Iterable[str]) -> BrokerOffsets | None:
        key = (bootstrap_servers(bootstrap), tuple(topics))
        with self._lock:
            kept = self._answers.get(key)
            if kept is not None and self.clock() - kept[0] < self.seconds:
                return kept[1]
            answer = broker_offsets(key[0], key[1], self.timeout_ms)
            self._answers[key] = (self.clock(), answer)
            return answer


def group_status(engine: Engine, group: str = "dataflow-registry", topics: Topics | None = None,
                 bootstrap: str | None = None, broker: BrokerOffsets | None = None,
                 ask_broker: bool = True) -> GroupStatus:
    """The group's partitions (those the broker lists, plus any the store holds offsets for),
    each with stored and end offsets and lag; lag totals null unless the broker answered."""
    from .lag import group_lag, offsets_ahead, stored_offsets

    topics = topics or Topics()
    stored = stored_offsets(engine, group)  # before the ends: a live stream's offsets pass an end read earlier
    fresh = broker is None and ask_broker  # an answer given (the dashboard's, up to seconds old) may predate them
    if fresh:
        broker = broker_offsets(bootstrap, [topics.transfers, topics.disclosures])
    ends = broker.ends if broker is not None else None
    lags: dict[tuple[str, int], int] = {}
    if broker is not None:
        ahead = offsets_ahead(stored, broker.ends, broker.confirmed) if fresh else {}
        for (topic, partition), n in ahead.items():
            log.warning("offsets_ahead", extra={"fields": {"group": group, "topic": topic, "partition": partition, "stored_offset": n,
                                                           "end_offset": broker.ends[(topic, partition)]}})
        lags = group_lag({**stored, **{p: broker.starts.get(p, 0) for p in ahead}}, broker.ends)
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
