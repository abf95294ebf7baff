"""Two workers on one PostgreSQL database do not wait on each other's row locks (issue 23): their
batches carry the same flows in the same hours (transfers are keyed by event, so every flow is on
every partition), yet each writes only its own partitions' aggregate shards. ``pg_locks`` is
sampled all along; the totals are exact."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import psycopg
import pytest
import sqlalchemy as sa

from registry.intake.ingest import Ingestor
from registry.model.declarations import declare
from registry.model.events import RawRecord
from registry.model.store import open_store

from .helpers import ref, transfer

START = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)
SUBJECTS = [ref(f"s{i}") for i in range(5)]


def _records(count: int) -> tuple[list[RawRecord], list[dict[str, Any]]]:
    rng = random.Random(23)
    records, events = [], []
    for i in range(count):
        # a dense stream: two hours, three flows, five subjects, all on every partition
        moment = START + timedelta(seconds=rng.randrange(7200))
        recipient = rng.choice(["google-analytics", "mailchimp", "stripe"])
        e = transfer(f"w{i}", time=moment.isoformat().replace("+00:00", "Z"), recipient=recipient,
                     subject_refs=[rng.choice(SUBJECTS)])
        events.append(e)
        records.append(RawRecord(value=orjson.dumps(e), topic="dataflow.transfers", partition=i % 4, offset=i // 4))
    return records, events


def _sampler(url: str, stop: threading.Event, samples: list[tuple[float, str, str, str]], polls: list[float]) -> None:
    """Every ~5 ms: which worker waits for a lock held by the other (from pg_locks)."""
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as conn:
        while not stop.is_set():
            polls.append(time.monotonic())
            rows = conn.execute(
                "SELECT w.application_name, h.application_name, l.locktype FROM pg_locks l "
                "JOIN pg_stat_activity w ON w.pid = l.pid "
                "JOIN pg_stat_activity h ON h.pid = ANY(pg_blocking_pids(l.pid)) "
                "WHERE NOT l.granted AND w.application_name LIKE 'lockw-%'").fetchall()
            now = time.monotonic()
            for waiter, holder, locktype in rows:
                samples.append((now, waiter, holder, locktype))
            time.sleep(0.005)


def _episodes(samples: list[tuple[float, str, str, str]], gap: float = 0.05) -> list[float]:
    """Lengths of the waits seen: consecutive samples of one waiter, apart by less than ``gap``."""
    lengths: list[float] = []
    for waiter in {s[1] for s in samples}:
        times = sorted(s[0] for s in samples if s[1] == waiter)
        begin = last = times[0]
        for t in times[1:]:
            if t - last > gap:
                lengths.append(last - begin + 0.005)
                begin = t
            last = t
        lengths.append(last - begin + 0.005)
    return lengths


@pytest.mark.clocked  # compares wall-clock lengths (waits against batches): measured alone
def test_two_workers_never_wait_on_each_others_aggregate_rows(postgres_url: str, manifest) -> None:  # type: ignore[no-untyped-def]
    from registry.model.store import _normalise

    declare(open_store(postgres_url), manifest)
    records, events = _records(6000)
    # a warm-up batch of another month-hour (creates the month's partition, the temp tables' types)
    Ingestor(open_store(postgres_url)).ingest_batch([RawRecord(value=orjson.dumps(transfer("warm", time="2026-03-01T00:00:00Z")))])
    durations: dict[str, list[float]] = {"lockw-a": [], "lockw-b": []}
    errors: list[BaseException] = []

    def worker(name: str, partitions: set[int]) -> None:
        try:
            engine = sa.create_engine(_normalise(postgres_url), connect_args={"application_name": name})
            ingestor = Ingestor(engine)
            mine = [r for r in records if r.partition in partitions]
            for start in range(0, len(mine), 500):
                batch = mine[start:start + 500]
                offsets = [("g", "dataflow.transfers", p, max(r.offset or 0 for r in batch if r.partition == p) + 1)
                           for p in sorted({r.partition or 0 for r in batch})]
                began = time.monotonic()
                # as the worker does: the batch's dead letters are forwarded to Kafka (acks awaited)
                # inside the transaction, here 60 ms of it, with every lock the batch took held
                ingestor.write(*ingestor.decode(batch), offsets=offsets, before_commit=lambda _o: time.sleep(0.06))
                durations[name].append(time.monotonic() - began)
            engine.dispose()
        except BaseException as exc:  # noqa: BLE001  reported by the test thread
            errors.append(exc)

    samples: list[tuple[float, str, str, str]] = []
    polls: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        try:
            _sampler(postgres_url, stop, samples, polls)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    sampler = threading.Thread(target=sample)
    sampler.start()
    threads = [threading.Thread(target=worker, args=("lockw-a", {0, 1})), threading.Thread(target=worker, args=("lockw-b", {2, 3}))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    stop.set()
    sampler.join(10)
    assert not errors, errors

    one_batch = min(min(d) for d in durations.values())
    gaps = sorted(b - a for a, b in zip(polls, polls[1:]))
    assert len(polls) > 20 and gaps[len(gaps) // 2] < one_batch / 4, (len(polls), gaps[-3:])  # the sampler kept looking
    waits = _episodes(samples)
    # never longer than one batch; in all, less than one batch (a row lock shared by the two
    # would make one wait for the other's whole transaction nearly every batch)
    assert not waits or (max(waits) < one_batch and sum(waits) < one_batch), (waits, one_batch, Counter(s[3] for s in samples))

    engine = open_store(postgres_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM event").scalar_one() == len(events) + 1
        hours = dict(conn.exec_driver_sql("SELECT recipient, sum(events) FROM flow_hour WHERE hour >= %s GROUP BY recipient",
                                          (START,)).all())
        days = dict(conn.exec_driver_sql("SELECT recipient, sum(events) FROM flow_day WHERE day = %s GROUP BY recipient",
                                         (START.date(),)).all())
        subjects = dict(conn.exec_driver_sql("SELECT subject_ref, sum(events) FROM subject_flow GROUP BY subject_ref").all())
        offsets = dict(conn.exec_driver_sql("SELECT partition, next_offset FROM consumer_offset WHERE group_id = 'g'").all())
    expected = Counter(e["data"]["recipient"] for e in events)
    assert {k: int(v) for k, v in hours.items()} == dict(expected)
    assert {k: int(v) for k, v in days.items()} == dict(expected)
    assert {k: int(v) for k, v in subjects.items()} == dict(Counter(e["data"]["subject_refs"][0] for e in events))
    assert offsets == {p: 1500 for p in range(4)}



@pytest.mark.parametrize("claim", ["per_key", "coarse"])
def test_two_writers_of_one_key_with_two_times_store_one_event(postgres_url: str, manifest, claim: str,  # type: ignore[no-untyped-def]
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Review of issue 23 (e.py): the unique key holds ``time``, so two transactions that both
    looked up ``(source, id)`` before either committed stored it twice, with two times. Now the
    second waits for the first and dead-letters its event as a conflicting duplicate (per-key
    locks, or the whole key space for a batch with more keys than lock slots allow)."""
    from registry.intake import dedupe
    from registry.intake.ingest import apply_isolating

    if claim == "coarse":
        monkeypatch.setattr(dedupe, "KEY_LOCKS_AT_MOST", 0)
    from registry.model.partitions import ensure_partitions

    engine = open_store(postgres_url)
    declare(engine, manifest)
    first = START + timedelta(hours=1)
    a = transfer("dup-1", time=first.isoformat(), recipient="mailchimp")
    b = transfer("dup-1", time=(first + timedelta(minutes=5)).isoformat(), recipient="mailchimp")
    ingestor = Ingestor(engine)
    (dec_a, _), (dec_b, _) = (ingestor.decode([RawRecord(value=orjson.dumps(e), topic="t", partition=p, offset=1)])
                              for p, e in ((0, a), (1, b)))
    ensure_partitions(engine, [first])
    applied_a, outcomes = threading.Event(), {}

    def writer(name: str, decoded: Any, wait_for: threading.Event | None) -> None:
        with engine.connect() as conn, conn.begin():
            if wait_for is not None:
                wait_for.wait(10)
            outcomes[name] = apply_isolating(conn, decoded, [])
            if wait_for is None:
                applied_a.set()
                time.sleep(0.5)  # writer b now looks the key up while a's insert is not yet committed

    threads = [threading.Thread(target=writer, args=("a", dec_a, None)), threading.Thread(target=writer, args=("b", dec_b, applied_a))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert outcomes["a"].result.model_dump() == {"ingested": 1, "duplicates": 0, "dead_lettered": 0}
    assert outcomes["b"].result.model_dump() == {"ingested": 0, "duplicates": 0, "dead_lettered": 1}
    assert [d.reason for d in outcomes["b"].dead] == ["conflicting_duplicate"]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM event WHERE event_id = 'dup-1'").scalar() == 1
        assert conn.exec_driver_sql("SELECT sum(events) FROM flow_hour WHERE recipient = 'mailchimp'").scalar() == 1
        assert conn.exec_driver_sql("SELECT reason FROM dead_letter").scalars().all() == ["conflicting_duplicate"]


def test_a_full_lock_table_falls_back_to_one_claim(postgres_url: str, manifest, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL's shared lock table is finite: when the per-key claim finds it full (53200),
    the batch is rerun claiming the key space whole, and nothing is lost or counted twice. (The
    table is not really filled here: it is shared by every database of the server.)"""
    from registry.intake import dedupe

    engine = open_store(postgres_url)
    declare(engine, manifest)
    real, calls = dedupe.claim_keys, []

    def claim(conn: sa.Connection, keys: set[tuple[str, str]]) -> None:
        calls.append(bool(conn.get_execution_options().get("registry_coarse_claim")))
        if len(calls) == 1:
            conn.exec_driver_sql("DO $$ BEGIN RAISE EXCEPTION 'out of shared memory' USING ERRCODE = '53200'; END $$")
        real(conn, keys)

    monkeypatch.setattr(dedupe, "claim_keys", claim)
    records, events = _records(40)
    assert Ingestor(engine).ingest(records).model_dump() == {"ingested": 40, "duplicates": 0, "dead_lettered": 0}
    assert calls == [False, True]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM event").scalar() == len(events)
