"""The group-lag check, and with it the detection of a re-created topic (or a lost log): the
stored offsets are compared with the broker's ends, the topic ids stored with them, and, where no
id can be compared, the fingerprint of the last record applied. Partitions found so are rewound
to their log start; the ``(source, id)`` dedupe absorbs what is read twice."""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

from kafka import KafkaConsumer, TopicPartition
from sqlalchemy.engine import Engine

from consumers.membership import stable
from consumers.offsets import AppliedOffsets
from registry.stream.kafka import MAX_REQUEST_BYTES
from registry.stream.lag import (Partition, adopt_topic_id, fingerprint, group_lag, offsets_ahead, rewind_stored,
                                 stored_last_records, stored_offsets, stored_topic_ids)
from registry.stream.status import BrokerOffsets, list_offsets

__all__ = ["LogCheck", "RECONNECT"]

log = logging.getLogger("registry.consumer")

# After a broker outage, reconnect within 2 s of its end (the client's default backoff grows to 30 s);
# at start, give up a bootstrap attempt after 10 s (default 30 s) so --outage-timeout stays close.
RECONNECT: dict[str, Any] = {"reconnect_backoff_max_ms": 2000, "bootstrap_timeout_ms": 10_000}


class LogCheck:
    """Whether the stored offsets of a group belong to the logs the broker holds now, and the
    group's lag per partition. ``stopping`` cuts a probe read short; ``topic_ids`` False ignores
    the broker's topic ids (as on a broker that reports none; tests of the fallback)."""

    def __init__(self, engine: Engine, group: str, bootstrap: str, offsets: AppliedOffsets, *, topic_ids: bool,
                 fetch_max_wait_ms: int, stopping: Callable[[], bool]) -> None:
        self.engine, self.group, self.bootstrap, self.offsets = engine, group, bootstrap, offsets
        self.topic_ids, self.fetch_max_wait_ms, self.stopping = topic_ids, fetch_max_wait_ms, stopping
        self._probe: KafkaConsumer | None = None  # reads single records to check a stored offset's last record

    def lags(self, consumer: KafkaConsumer, topics: list[str],
             rewound: Callable[[set[Partition]], None]) -> dict[Partition, int]:
        """The lag per partition (store offsets vs end offsets). Partitions of a re-created topic
        (its id differs from the one stored with the offsets) and partitions whose log ends below
        the offsets held for them are read again from their start first (``rewound`` is told
        which, right after the seek)."""
        # Offsets first, then the broker's ends: ends only grow unless the log was lost, so an
        # offset read before them and past them is a real sign. (The other way round, another
        # member applying records meanwhile looked like a re-created topic.)
        stored = stored_offsets(self.engine, self.group)
        stored_ids = stored_topic_ids(self.engine, self.group)
        lasts = stored_last_records(self.engine, self.group)  # with the offsets: one snapshot
        cached = self.offsets.known()
        broker, ids = _broker_offsets(consumer, topics)
        if not self.topic_ids:
            ids = dict.fromkeys(ids)
        held = {p: max(stored.get(p, 0), cached.get(p, 0)) for p in stored.keys() | cached.keys()}
        ahead = offsets_ahead(held, broker.ends, broker.confirmed)
        for p, known in stored_ids.items():
            if known is not None and ids.get(p[0]) not in (None, known) and p in broker.ends:
                ahead[p] = held.get(p, stored[p])  # re-created: whatever its length
        # Only the member holding a partition rewinds it (its cached floor alone decides what is
        # skipped); another one's counts as lag from the log start until its owner does. A member
        # not settled in the group (rejoining, or dropped after a batch held past the rebalance
        # timeout) may no longer hold what its assignment still lists: it rewinds nothing.
        mine = {(tp.topic, tp.partition) for tp in consumer.assignment()} if stable(consumer) else set()
        self._check_last_records(mine, stored, (stored_ids, lasts), ids, broker, ahead, held)
        rewind = {p: n for p, n in ahead.items() if p in mine}
        if rewind:
            self._read_again(consumer, rewind, stored, broker, ids, rewound)
            stored = stored_offsets(self.engine, self.group)
        return group_lag({**stored, **{p: broker.starts.get(p, 0) for p in ahead if p not in rewind}}, broker.ends)

    def close(self, timeout_ms: int) -> None:
        if self._probe is not None:
            self._probe.close(autocommit=False, timeout_ms=timeout_ms)

    def _check_last_records(self, mine: set[Partition], stored: dict[Partition, int],
                            known: tuple[dict[Partition, str | None], dict[Partition, str | None]],
                            ids: dict[str, str | None], broker: BrokerOffsets, ahead: dict[Partition, int],
                            held: dict[Partition, int]) -> None:
        """Where no topic id can be compared (the broker reports none, or the row has none: stored
        before ids were kept), the contract's fallback: the record now at the stored offset minus
        one must be the one applied last (its fingerprint is stored with the offset). A different
        record, none where one should be, or a log that starts past the stored offset: the topic
        was re-created (``ahead``: read again from its start). A row gets the broker's id only
        once verified, never blindly."""
        stored_ids, lasts = known  # the stored rows' topic ids and last records, read with ``stored``
        needed = [p for p in sorted(mine) if p in stored and p not in ahead and p in broker.ends
                  and (ids.get(p[0]) is None or stored_ids.get(p) is None)]
        for p in needed:
            offset, topic_id = stored[p], ids.get(p[0])
            same = True if offset == 0 else self._same_record(p, offset, lasts.get(p), broker.starts.get(p, 0))
            if same is False:
                ahead[p] = held.get(p, offset)
            elif same is True and topic_id is not None:
                adopt_topic_id(self.engine, self.group, p, topic_id, offset)

    def _same_record(self, p: Partition, offset: int, last: str | None, start: int) -> bool | None:
        """Whether the record at ``offset - 1`` is the one applied last (None: not known now)."""
        if start > offset:
            return False  # the log starts past what was applied: not the log it was read from
        if start == offset:
            return True  # retention removed the record: nothing below the offset to read again anyway
        if last is None:
            return False  # offsets stored before fingerprints: not verifiable; a re-read costs duplicates only
        if self._probe is None:
            self._probe = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False, allow_auto_create_topics=False,
                                        fetch_max_wait_ms=self.fetch_max_wait_ms, max_partition_fetch_bytes=MAX_REQUEST_BYTES,
                                        **RECONNECT)
        tp = TopicPartition(*p)
        self._probe.assign([tp])
        self._probe.seek(tp, offset - 1)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline and not self.stopping():
            for record in self._probe.poll(timeout_ms=500, max_records=1).get(tp, []):
                if record.offset == offset - 1:
                    return fingerprint(record) == last
                if record.offset > offset - 1:
                    return False  # compacted away or never there: not the log that was read
        return None

    def _read_again(self, consumer: KafkaConsumer, ahead: dict[Partition, int], stored: dict[Partition, int],
                    broker: BrokerOffsets, ids: dict[str, str | None], rewound: Callable[[set[Partition]], None]) -> None:
        """The topic was deleted and re-created, or the broker lost its log: every record below
        the offsets held for these partitions of ours would be skipped as applied. Rewind the
        stored offset to the log start (unless it moved meanwhile) with the topic's new id, forget
        the cached floor, seek there and tell ``rewound``, one partition at a time: a failure
        further on leaves none sought with its old records still in hand."""
        for p, held in ahead.items():
            start, end = broker.starts.get(p, 0), broker.ends[p]
            log.warning("offsets_reset", extra={"fields": {"topic": p[0], "partition": p[1], "stored_offset": held,
                                                           "end_offset": end, "reset_to": start, "topic_id": ids.get(p[0])}})
            if p in stored:
                rewind_stored(self.engine, self.group, p, stored[p], start, ids.get(p[0]))
            self.offsets.forget(p)
            consumer.seek(TopicPartition(*p), max(start, self.offsets.floor(p)))
            rewound({p})


def _broker_offsets(consumer: KafkaConsumer, topics: list[str]) -> tuple[BrokerOffsets, dict[str, str | None]]:
    """End and log start offsets asked of the broker (ListOffsets: no record is read, no second
    consumer), and each topic's id where the broker reports one (Metadata v10+, Kafka 2.8+; the
    test broker does too). Ends of our own partitions are raised to the high watermark our own
    fetches saw: tansu 0.6.0 answers ListOffsets with the last batch's base offset + 1 (measured:
    500 records in one batch moved the end by 1). Only ends known exactly count as confirmed
    (what a log that ends below the stored offset is judged by): a high watermark, or an empty log."""
    partitions, ends, starts = list_offsets(consumer, topics)
    mine = consumer.assignment()
    confirmed = set()
    for tp in partitions:
        seen = consumer.highwater(tp) if tp in mine else None
        if seen is not None:
            ends[tp] = max(ends.get(tp, 0), int(seen))
            confirmed.add((tp.topic, tp.partition))
        elif ends.get(tp, 0) == 0:
            confirmed.add((tp.topic, tp.partition))
    cluster = getattr(getattr(consumer, "_client", None), "cluster", None)
    ids = {}
    for topic in topics:
        topic_id = cluster.topic_id(topic) if cluster is not None and hasattr(cluster, "topic_id") else None
        ids[topic] = str(topic_id) if topic_id is not None and topic_id.int != 0 else None
    return BrokerOffsets(ends={(tp.topic, tp.partition): n for tp, n in sorted(ends.items())},
                         starts={(tp.topic, tp.partition): n for tp, n in sorted(starts.items())},
                         confirmed=frozenset(confirmed)), ids

