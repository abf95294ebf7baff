"""The worker against a real broker and a real database, under the faults a review found: dead
letters forwarded while a transaction was open (and again when the batch was retried), and
stored offsets left ahead of a topic that was deleted and re-created."""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from consumers.worker import Worker, WorkerConfig
from registry.intake.ingest import Ingestor
from registry.model.events import RawRecord
from registry.stream.kafka import send_lines
from registry.stream.status import EndOffsets, group_status

from .conftest import table_counts
from .faults import delete_topics, proxied_broker
from .helpers import transfer
from .test_kafka import FAST_GROUP, _declared_db, _topics


def _lines(tag: str, valid: int) -> tuple[list[bytes], int]:
    """``valid`` transfers, three records that decoding refuses, and one conflicting duplicate
    (refused only once the database is asked); the refused ones come first."""
    refused = [b'{"specversion": "1.0", "id": "broken', orjson.dumps(transfer(f"{tag}-bad-1", data_categories=["user.telepathy"])),
               orjson.dumps({**transfer(f"{tag}-bad-2"), "type": "registry.teleport.v1"})]
    events = [orjson.dumps(transfer(f"{tag}-{i}")) for i in range(valid)]
    conflict = orjson.dumps(transfer(f"{tag}-0", purpose="analytics"))
    return refused + events + [conflict], len(refused) + 1


def _forwarded(bootstrap: str, topic: str) -> list[Any]:
    """Every record on the dead-letter topic (counted by its end offset, so extra copies show)."""
    end = EndOffsets(bootstrap)
    try:  # an end the broker reports short (the test broker's last batch) counts once read to it
        for _ in range(10):
            offsets = end.read([topic])
            if (topic, 0) in offsets.confirmed:
                break
        assert (topic, 0) in offsets.confirmed, "the dead-letter topic's end was never confirmed"
        count = offsets.ends[(topic, 0)]
    finally:
        end.close()
    # stops at the end offset: the 30 s only bound a starved machine's first fetch
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, consumer_timeout_ms=30_000)
    consumer.assign([TopicPartition(topic, 0)])
    consumer.seek_to_beginning()
    records = []
    for record in consumer:
        records.append(record)
        if len(records) >= count:
            break
    consumer.close()
    assert len(records) == count
    return records


def _origins(records: list[Any]) -> Counter[tuple[str, int, int]]:
    def origin(r: Any) -> tuple[str, int, int]:
        h = dict(r.headers)
        return h["dlq_topic"].decode(), int(h["dlq_partition"]), int(h["dlq_offset"])

    return Counter(origin(r) for r in records)


@pytest.mark.slow
def test_a_batch_retried_after_a_failed_commit_forwards_each_dead_letter_once(declared: sa.Engine, kafka_bootstrap: str) -> None:
    topics, tag = _topics(), uuid.uuid4().hex[:8]
    lines, dead = _lines(tag, valid=6)
    send_lines(lines, bootstrap=kafka_bootstrap, topics=topics, mode="structured", partitions=1)
    failed: list[str] = []
    commits: list[str] = []

    def commit_fails_once(conn: sa.Connection) -> None:
        commits.append("commit")
        if not failed:  # the database goes away at the first commit, as a crash would look
            failed.append("commit")
            raise sa.exc.OperationalError("COMMIT", None, ConnectionError("server closed the connection unexpectedly"))

    sa.event.listen(declared, "commit", commit_fails_once)
    try:
        totals = Worker(declared, WorkerConfig(bootstrap=kafka_bootstrap, group=f"g{uuid.uuid4().hex[:6]}", topics=topics,
                                               partitions=1, stop_when_idle=2, **FAST_GROUP)).run(install_signals=False)
    finally:
        sa.event.remove(declared, "commit", commit_fails_once)
    assert failed and len(commits) >= 2, "the failure was not injected into a batch's commit"
    assert totals.model_dump() == {"ingested": 6, "duplicates": 0, "dead_lettered": dead}
    assert table_counts(declared)["event"] == 6 and table_counts(declared)["dead_letter"] == dead
    origins = _origins(_forwarded(kafka_bootstrap, topics.dead_letter))
    assert sorted(origins.values()) == [1] * dead, f"forwarded more than once: {origins}"
    assert {offset for _, _, offset in origins} == {0, 1, 2, len(lines) - 1}


@pytest.mark.slow
def test_dead_letters_wait_for_their_ack_with_no_transaction_open(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The broker is cut the moment the worker starts forwarding; while it waits for the ack,
    another SQLite writer must be able to commit (it could not while the worker held the lock)."""
    db, engine = _declared_db(tmp_path)
    probe: list[str] = []

    with proxied_broker(tmp_path / "tansu.log") as (bootstrap, proxy):
        topics, tag = _topics(), uuid.uuid4().hex[:8]
        lines, dead = _lines(tag, valid=3)
        send_lines(lines, bootstrap=bootstrap, topics=topics, mode="structured", partitions=1)

        def write_meanwhile() -> None:
            try:
                with sqlite3.connect(tmp_path / "registry.db", timeout=2) as conn:
                    conn.execute("INSERT INTO consumer_offset (group_id, topic, partition, next_offset) VALUES ('probe', 't', 0, 1)")
                probe.append("committed")
            except sqlite3.OperationalError as exc:
                probe.append(str(exc))
            finally:
                proxy.restore()

        writer = threading.Thread(target=write_meanwhile)

        class CutAtFirstDeadLetter(KafkaProducer):  # type: ignore[misc]
            def send(self, topic: str, *args: Any, **kwargs: Any) -> Any:
                if topic == topics.dead_letter and writer.ident is None:
                    proxy.cut()  # no ack can come until the writer is done
                    writer.start()
                return super().send(topic, *args, **kwargs)

        monkeypatch.setattr("consumers.worker.KafkaProducer", CutAtFirstDeadLetter)
        totals = Worker(engine, WorkerConfig(bootstrap=bootstrap, group=f"g{uuid.uuid4().hex[:6]}", topics=topics, partitions=1,
                                             stop_when_idle=2, outage_timeout=60, **FAST_GROUP)).run(install_signals=False)
        assert writer.ident is not None, "no dead letter was forwarded"
        writer.join(10)
        assert probe == ["committed"], f"another writer could not commit while the worker waited for the ack: {probe}"
        assert totals.ingested == 3 and totals.dead_lettered == dead
        assert sorted(_origins(_forwarded(bootstrap, topics.dead_letter)).values()) == [1] * dead


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append({"event": record.getMessage(), **getattr(record, "fields", {})})


@pytest.mark.slow
def test_a_deleted_and_re_created_topic_is_read_again_from_its_start(declared: sa.Engine, kafka_bootstrap: str) -> None:
    topics, tag, group = _topics(), uuid.uuid4().hex[:8], f"g{uuid.uuid4().hex[:6]}"
    config = WorkerConfig(bootstrap=kafka_bootstrap, group=group, topics=topics, partitions=1, stop_when_idle=2, **FAST_GROUP)
    send_lines([orjson.dumps(transfer(f"{tag}-old-{i}")) for i in range(12)], bootstrap=kafka_bootstrap, topics=topics,
               mode="structured", partitions=1)
    assert Worker(declared, config).run(install_signals=False).ingested == 12
    delete_topics(kafka_bootstrap, [topics.transfers, topics.disclosures])
    # fewer records than before, one of them an old event sent again
    again = [orjson.dumps(transfer(f"{tag}-new-{i}")) for i in range(4)] + [orjson.dumps(transfer(f"{tag}-old-3"))]
    send_lines(again, bootstrap=kafka_bootstrap, topics=topics, mode="structured", partitions=1)

    before = group_status(declared, group, topics, kafka_bootstrap)
    [stale] = [p for p in before.partitions if p.topic == topics.transfers]
    assert (stale.stored_offset, stale.end_offset, stale.lag, before.lag) == (12, 5, 5, 5), before

    logs = _Lines()
    logging.getLogger("registry.consumer").addHandler(logs)
    try:
        totals = Worker(declared, config).run(install_signals=False)
    finally:
        logging.getLogger("registry.consumer").removeHandler(logs)
    assert totals.model_dump() == {"ingested": 4, "duplicates": 1, "dead_lettered": 0}
    assert table_counts(declared)["event"] == 16
    # (the end logged is the broker's answer at that instant: the topic id may trigger the reset
    # before this member's fetches raised tansu's short ListOffsets end to the high watermark)
    assert [{k: v for k, v in line.items() if k not in ("topic_id", "end_offset")} for line in logs.lines
            if line["event"] == "offsets_reset"] == [
        {"event": "offsets_reset", "topic": topics.transfers, "partition": 0, "stored_offset": 12, "reset_to": 0}]
    after = group_status(declared, group, topics, kafka_bootstrap)
    assert after.lag == 0 and [p.stored_offset for p in after.partitions if p.topic == topics.transfers] == [5]


def _consumed(tmp_path: Path, bootstrap: str, events: int) -> tuple[sa.Engine, Any, str, WorkerConfig]:
    """A store with ``events`` transfers consumed from a one-partition topic by a group of one."""
    _, engine = _declared_db(tmp_path)
    topics, group = _topics(), f"g{uuid.uuid4().hex[:6]}"
    config = WorkerConfig(bootstrap=bootstrap, group=group, topics=topics, partitions=1, stop_when_idle=1, **FAST_GROUP)
    send_lines([orjson.dumps(transfer(f"a-{i}")) for i in range(events)], bootstrap=bootstrap, topics=topics,
               mode="structured", partitions=1)
    Worker(engine, config).run(install_signals=False)
    return engine, topics, group, config


class _Owner:
    """A consumer as the lag check sees it: it holds ``tp`` (seeks are recorded)."""

    def __init__(self, tp: TopicPartition) -> None:
        self.tp, self.seeks = tp, []  # type: list[Any]

    def assignment(self) -> set[TopicPartition]:
        return {self.tp}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))


def test_records_applied_during_a_lag_check_are_not_taken_for_a_lost_log(tmp_path: Path, kafka_bootstrap: str,
                                                                         caplog: pytest.LogCaptureFixture,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Another member applies records produced after this member read the broker's ends: the
    stored offset then passes those ends. Read in that order (ends, then offsets) it looked like a
    re-created topic and the partition was rewound to 0; offsets are read first now."""
    engine, topics, group, config = _consumed(tmp_path, kafka_bootstrap, 10)
    from consumers import recreated
    from registry.stream.status import EndOffsets

    checking = Worker(engine, config)

    def read_then_another_member_applies(consumer: Any, names: Any) -> Any:
        reader = EndOffsets(kafka_bootstrap)
        answer = reader.read(names)
        reader.close()
        lines = [orjson.dumps(transfer(f"b-{i}")) for i in range(5)]
        send_lines(lines, bootstrap=kafka_bootstrap, topics=topics, mode="structured", partitions=1)
        # another member applies them, with their offsets, in one transaction
        Ingestor(engine).ingest_batch([RawRecord(value=line) for line in lines], offsets=[(group, topics.transfers, 0, 15)])
        return answer, {name: None for name in names}

    monkeypatch.setattr(recreated, "_broker_offsets", read_then_another_member_applies)
    owner = _Owner(TopicPartition(topics.transfers, 0))
    with caplog.at_level(logging.WARNING):
        checking._group_lag(owner)  # type: ignore[arg-type]
    stored = group_status(engine, group, topics, kafka_bootstrap)
    assert [(p.stored_offset, p.lag) for p in stored.partitions if p.topic == topics.transfers] == [(15, 0)]
    assert stored.lag == 0 and owner.seeks == []
    assert not [r for r in caplog.records if r.getMessage() in ("offsets_reset", "offsets_ahead")]


@pytest.mark.slow
def test_a_reused_broker_answer_is_not_taken_for_a_lost_log(tmp_path: Path, kafka_bootstrap: str,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """The dashboard reuses the broker's ends for 10 s while workers keep up: the fresh stored
    offsets pass those ends. That showed every record of the partition as lag."""
    from registry.stream.status import RecentOffsets

    engine, topics, group, config = _consumed(tmp_path, kafka_bootstrap, 20)
    cache, names = RecentOffsets(seconds=600), [topics.transfers, topics.disclosures]
    assert group_status(engine, group, topics, broker=cache(kafka_bootstrap, names), ask_broker=False).lag == 0
    send_lines([orjson.dumps(transfer(f"b-{i}")) for i in range(3)], bootstrap=kafka_bootstrap, topics=topics,
               mode="structured", partitions=1)
    Worker(engine, config).run(install_signals=False)
    with caplog.at_level(logging.WARNING):
        again = group_status(engine, group, topics, broker=cache(kafka_bootstrap, names), ask_broker=False)
    assert again.lag == 0
    assert not [r for r in caplog.records if r.getMessage() == "offsets_ahead"]
