"""The worker's bookkeeping without a broker: applied offsets, group lag, stop conditions, and
the outage backoff."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from consumers.offsets import AppliedOffsets, StopConditions
from registry.intake.ingest import Ingestor
from registry.model.store import open_store
from registry.stream.lag import group_lag, offsets_ahead, rewind_stored, stored_offsets
from registry.model.retry import Outage


def _rec(topic: str, partition: int, offset: int) -> SimpleNamespace:
    return SimpleNamespace(topic=topic, partition=partition, offset=offset)


@pytest.fixture
def store(tmp_path: Path) -> sa.Engine:
    return open_store(f"sqlite:///{tmp_path / 'offsets.db'}")


def test_floors_come_from_the_store_and_never_go_back(store: sa.Engine) -> None:
    # a batch written with its offsets, as the worker writes it
    Ingestor(store).write([], [], offsets=[("g", "t", 0, 120), ("g", "t", 1, 7)])
    book = AppliedOffsets.of_store(store, "g")
    assert book.floor(("t", 0)) == 120 and book.floor(("t", 2)) == 0
    assert [r.offset for r in book.fresh(("t", 0), [_rec("t", 0, o) for o in (118, 119, 120, 121)])] == [120, 121]
    nexts = AppliedOffsets.nexts([_rec("t", 0, 130), _rec("t", 0, 125), _rec("t", 1, 9)])
    assert nexts == {("t", 0): 131, ("t", 1): 10}
    book.advance(nexts)
    book.advance({("t", 0): 50})  # a batch read before a rebalance, behind what is stored now
    assert book.known()[("t", 0)] == 131
    book.forget()
    assert book.known() == {} and book.floor(("t", 0)) == 120  # read again from the store


def test_stored_offsets_never_go_back_in_the_store(store: sa.Engine) -> None:
    Ingestor(store).write([], [], offsets=[("g", "t", 0, 500)])
    Ingestor(store).write([], [], offsets=[("g", "t", 0, 300)])  # a late member's stale batch
    assert stored_offsets(store, "g") == {("t", 0): 500}
    assert stored_offsets(store, "other") == {}


def test_group_lag_counts_partitions_the_store_never_saw() -> None:
    assert group_lag({("t", 0): 100, ("t", 1): 40}, {("t", 0): 100, ("t", 1): 50, ("t", 2): 7}) == {
        ("t", 0): 0, ("t", 1): 10, ("t", 2): 7}


def test_offsets_past_a_confirmed_end_are_rewound_once(store: sa.Engine) -> None:
    held, ends = {("t", 0): 30, ("t", 1): 8, ("t", 2): 9}, {("t", 0): 5, ("t", 1): 8, ("t", 2): 4}
    # ("t", 2)'s end was not confirmed (a short read of tansu's end): never rewound on it
    assert offsets_ahead(held, ends, {("t", 0), ("t", 1)}) == {("t", 0): 30}
    Ingestor(store).write([], [], offsets=[("g", "t", 0, 30)])
    assert rewind_stored(store, "g", ("t", 0), 30, 0) and stored_offsets(store, "g") == {("t", 0): 0}
    Ingestor(store).write([], [], offsets=[("g", "t", 0, 3)])  # another member applied records since
    assert not rewind_stored(store, "g", ("t", 0), 30, 0) and stored_offsets(store, "g") == {("t", 0): 3}
    book = AppliedOffsets({("t", 0): 3, ("t", 1): 7}.__getitem__)
    book.advance({("t", 0): 30, ("t", 1): 8})
    book.forget(("t", 0))
    assert book.known() == {("t", 1): 8} and book.floor(("t", 0)) == 3


def test_stop_needs_idle_time_and_a_known_zero_lag() -> None:
    now = [0.0]
    stops = StopConditions(idle_seconds=8, clock=lambda: now[0])
    now[0] = 7.9
    assert not stops.should_stop(0)
    now[0] = 8.0
    assert stops.idle() and stops.should_stop(0)
    assert not stops.should_stop(None)  # broker unreachable: lag unknown, never idle
    assert not stops.should_stop(3)  # partitions held by dead members still have records
    stops.records(10)
    assert not stops.should_stop(0)  # records just arrived
    assert not StopConditions(clock=lambda: now[0]).should_stop(0)  # without --stop-when-idle: never


def test_max_events_bounds_the_batches() -> None:
    stops = StopConditions(max_events=2500)
    assert stops.room(2000) == 2000
    stops.records(2000)
    assert stops.room(2000) == 500 and not stops.reached_max()
    stops.records(500)
    assert stops.reached_max() and stops.should_stop(None)


def test_outage_backs_off_then_gives_up_after_the_timeout() -> None:
    now, slept = [0.0], []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    outage = Outage(10, lambda e: isinstance(e, ConnectionError), sleep=sleep, clock=lambda: now[0])
    calls = []

    def flaky() -> str:
        calls.append(now[0])
        if len(calls) < 4:
            raise ConnectionError("down")
        return "ok"

    assert outage.call(flaky, "test") == "ok"
    assert slept == [0.2, 0.4, 0.8] and outage.since is None
    with pytest.raises(ConnectionError):
        outage.call(lambda: (_ for _ in ()).throw(ConnectionError("down")), "test")
    assert now[0] - 1.4 == pytest.approx(10)  # gave up once the outage lasted the timeout
    with pytest.raises(ValueError):
        outage.call(lambda: (_ for _ in ()).throw(ValueError("a bug, not an outage")), "test")


class _PgError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def test_deadlocks_and_serialization_failures_are_retried_others_are_not(monkeypatch: pytest.MonkeyPatch) -> None:
    from registry.model import retry

    monkeypatch.setattr(retry.time, "sleep", lambda s: None)
    failures = [_PgError("40P01"), _PgError("40001")]

    def transaction() -> str:
        if failures:
            raise sa.exc.OperationalError("INSERT …", {}, failures.pop(0))
        return "committed"

    assert retry.on_conflict(transaction) == "committed" and not failures
    calls = []

    def unique_violation() -> None:
        calls.append(1)
        raise sa.exc.IntegrityError("INSERT …", {}, _PgError("23505"))

    with pytest.raises(sa.exc.IntegrityError):
        retry.on_conflict(unique_violation)
    assert len(calls) == 1

    def always_deadlocked() -> None:
        calls.append(1)
        raise sa.exc.OperationalError("INSERT …", {}, _PgError("40P01"))

    calls.clear()
    with pytest.raises(sa.exc.OperationalError):
        retry.on_conflict(always_deadlocked)
    assert len(calls) == retry.CONFLICT_ATTEMPTS
    assert retry.is_db_outage(sa.exc.OperationalError("SELECT 1", {}, _PgError("08006")))
    assert not retry.is_db_outage(sa.exc.IntegrityError("INSERT …", {}, _PgError("23505")))


@pytest.mark.empty_store
def test_migration_0008_keeps_stored_offsets_and_later_batches_store_their_last_record(db_url: str) -> None:
    """Review finding 4: offsets stored before 0008 keep their values (no fingerprint: the worker
    reads such a partition again once); a later batch stores its last record's fingerprint, and
    only when it moves the offset forward."""
    from registry.stream.lag import stored_last_records

    from .helpers import store_at

    old = store_at(db_url, "0006")
    with old.begin() as conn:
        conn.execute(sa.text("INSERT INTO consumer_offset (group_id, topic, partition, next_offset, topic_id) "
                             "VALUES ('g', 't', 0, 40, NULL)"))
    old.dispose()
    engine = open_store(db_url)
    assert stored_offsets(engine, "g") == {("t", 0): 40} and stored_last_records(engine, "g") == {("t", 0): None}
    ingestor = Ingestor(engine)
    ingestor.ingest_batch([], offsets=[("g", "t", 0, 41, "1:abc")])
    assert stored_last_records(engine, "g") == {("t", 0): "1:abc"}
    ingestor.ingest_batch([], offsets=[("g", "t", 0, 30, "0:old")])  # a batch read before a rebalance
    assert stored_offsets(engine, "g") == {("t", 0): 41} and stored_last_records(engine, "g") == {("t", 0): "1:abc"}


def test_a_failure_while_positioning_leaves_no_partition_half_done(store: sa.Engine) -> None:
    """Review finding: partition 0 was sought back to the store's offset, then reading partition
    1's offset failed; the retry took partition 0 as checked, with its records polled from the
    old position still in hand: they were applied, and the store's offset jumped past the rest."""
    from kafka import TopicPartition

    from consumers.worker import Worker, WorkerConfig

    worker = Worker(store, WorkerConfig(bootstrap="127.0.0.1:9"))
    failing = {("t", 1)}

    def read(p: tuple[str, int]) -> int:
        if p in failing:
            failing.clear()
            raise sa.exc.OperationalError("SELECT", {}, Exception("database is locked"))
        return 0

    worker.offsets = AppliedOffsets(read)
    worker._lags = lambda consumer, topics=None: {}  # type: ignore[method-assign]  # the broker's side is not under test
    sought: dict[tuple[str, int], int] = {}
    consumer = SimpleNamespace(assignment=lambda: {TopicPartition("t", 0), TopicPartition("t", 1)},
                               seek=lambda tp, n: sought.__setitem__((tp.topic, tp.partition), n))
    polled = [SimpleNamespace(offset=n) for n in (500, 501, 502)]
    worker._polled = [(TopicPartition("t", 0), polled), (TopicPartition("t", 1), polled)]
    with pytest.raises(sa.exc.OperationalError):
        worker._position_assigned(consumer)
    assert sought == {("t", 0): 0} and [tp.partition for tp, _ in worker._polled] == [1]  # its records went with the seek
    worker._positioned = 0.0
    worker._position_assigned(consumer)  # the retry
    assert sought == {("t", 0): 0, ("t", 1): 0} and worker._polled == []


def test_a_stop_applies_no_record_of_a_partition_not_yet_checked(store: sa.Engine) -> None:
    """Review finding: a SIGTERM during the poll that brought a new assignment skipped the check,
    and the records were applied past a store offset that was behind (the rest lost for good).
    Now they are dropped, the batch's own records of that partition too: the next holder reads
    them."""
    from kafka import TopicPartition

    from consumers.worker import Worker, WorkerConfig

    worker = Worker(store, WorkerConfig(bootstrap="127.0.0.1:9"))
    worker.offsets = AppliedOffsets(lambda p: 100)
    consumer = SimpleNamespace(assignment=lambda: {TopicPartition("t", 0)})
    worker._polled = [(TopicPartition("t", 0), [_rec("t", 0, n) for n in (300, 301)]), (TopicPartition("u", 0), [_rec("u", 0, 7)])]
    worker._batch = [_rec("t", 0, 299), _rec("v", 0, 5)]
    worker.offsets.floor(("v", 0))  # checked before: kept
    worker._stop = True
    worker._position_assigned(consumer)
    assert worker._polled == [] and [(m.topic, m.offset) for m in worker._batch] == [("v", 5)]
