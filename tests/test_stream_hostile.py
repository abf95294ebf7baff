"""Records and situations that must not stop a worker, through the real broker (issue 26,
contract v3 §3): tombstones, a 10 MiB record, a re-created topic with a longer log, restarts and
signals in every state, and batches compressed by a librdkafka producer."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from kafka import KafkaProducer

from consumers.worker import Worker, WorkerConfig
from registry.exceptions import UndecodableBatchError
from registry.intake.deadletters import list_dead_letters
from registry.model.events import MAX_EVENT_BYTES
from registry.stream.kafka import Topics, ensure_topics, send_lines
from registry.stream.lag import rewind_stored
from registry.stream.status import group_status

from .conftest import ROOT, table_counts
from .faults import delete_topics, refused_port
from .helpers import transfer
from .test_kafka import FAST_GROUP, _consume_cli, _dead_letter_topic, _declared_db, _topics
from .test_worker_faults import _forwarded


def _group() -> str:
    return f"g{uuid.uuid4().hex[:6]}"


def _lines(tag: str, n: int) -> list[bytes]:
    return [orjson.dumps(transfer(f"{tag}-{i}")) for i in range(n)]


def _worker(engine: sa.Engine, bootstrap: str, topics: Topics, group: str, **extra: Any) -> Worker:
    config = WorkerConfig(bootstrap=bootstrap, group=group, topics=topics, partitions=1,
                          **{"stop_when_idle": 2.0, **FAST_GROUP, **extra})
    return Worker(engine, config)


def _produce(bootstrap: str, topic: str, values: list[bytes | None]) -> None:
    """Sent as they are, unkeyed (a tombstone keyed, as compacted topics have them)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=32 * 1024 * 1024)
    for value in values:
        producer.send(topic, key=b"k" if value is None else None, value=value,
                      headers=[("content-type", b"application/cloudevents+json")])
    producer.flush()
    producer.close()


@pytest.mark.slow
def test_a_tombstone_is_dead_lettered_once_and_the_partition_moves_on(tmp_path: Path, kafka_bootstrap: str) -> None:
    """Finding 1: a null value crashed every run on the same batch and re-forwarded its dead letters."""
    _, engine = _declared_db(tmp_path)
    topics, group, tag = _topics(), _group(), uuid.uuid4().hex[:6]
    ensure_topics(kafka_bootstrap, topics, 1)
    _produce(kafka_bootstrap, topics.transfers, [_lines(tag, 1)[0], None, b"{not json", _lines(f"{tag}b", 1)[0]])
    first = _worker(engine, kafka_bootstrap, topics, group).run(install_signals=False)
    assert first.model_dump() == {"ingested": 2, "duplicates": 0, "dead_lettered": 2}
    again = _worker(engine, kafka_bootstrap, topics, group).run(install_signals=False)
    assert again.model_dump() == {"ingested": 0, "duplicates": 0, "dead_lettered": 0}
    forwarded = _forwarded(kafka_bootstrap, topics.dead_letter)  # all of them: a third copy would show
    assert len(forwarded) == 2 and sorted(dict(r.headers)["dlq_reason"] for r in forwarded) == [b"invalid_json"] * 2
    assert [r.value for r in forwarded if dict(r.headers)["dlq_offset"] == b"1"] == [None]
    assert {d.reason for d in list_dead_letters(engine)} == {"invalid_json"}


@pytest.mark.slow
def test_a_10_mib_record_is_too_large_and_its_dead_letter_record_is_cut(tmp_path: Path, kafka_bootstrap: str) -> None:
    """Finding 2: the forwarder re-sent 10 MiB (over its 8 MiB cap): an outage retried for 300 s."""
    _, engine = _declared_db(tmp_path)
    topics, group, tag = _topics(), _group(), uuid.uuid4().hex[:6]
    ensure_topics(kafka_bootstrap, topics, 1)
    huge = b'{"pad":"' + b"x" * (10 * MAX_EVENT_BYTES) + b'"}'
    _produce(kafka_bootstrap, topics.transfers, [huge, _lines(tag, 1)[0]])
    record, headers = _one_dead_letter(engine, kafka_bootstrap, topics, group, ingested=1)
    assert headers["dlq_reason"] == b"too_large" and headers["dlq_truncated"] == str(len(huge)).encode()
    assert MAX_EVENT_BYTES - 2000 < len(record.value) <= MAX_EVENT_BYTES and record.value == huge[:len(record.value)]


@pytest.mark.slow
def test_a_re_created_topic_with_a_longer_log_is_read_from_its_start(tmp_path: Path, kafka_bootstrap: str) -> None:
    """Finding 3: 40 consumed, topic deleted, 60 new published: the first 40 were skipped as
    applied (the new log is longer than the stored offset), and status said lag 0."""
    _, engine = _declared_db(tmp_path)
    topics, group, tag = _topics(), _group(), uuid.uuid4().hex[:6]
    send_lines(_lines(f"{tag}-old", 40), bootstrap=kafka_bootstrap, topics=topics, mode="structured", partitions=1)
    assert _worker(engine, kafka_bootstrap, topics, group).run(install_signals=False).ingested == 40
    delete_topics(kafka_bootstrap, [topics.transfers, topics.disclosures])
    send_lines(_lines(f"{tag}-new", 60), bootstrap=kafka_bootstrap, topics=topics, mode="structured", partitions=1)
    totals = _worker(engine, kafka_bootstrap, topics, group).run(install_signals=False)
    assert totals.ingested == 60 and table_counts(engine)["event"] == 100
    after = group_status(engine, group, topics, kafka_bootstrap)
    assert after.lag == 0 and [p.stored_offset for p in after.partitions if p.topic == topics.transfers] == [60]


@pytest.mark.slow
def test_a_rewound_stored_offset_is_read_again_by_the_next_member(tmp_path: Path, kafka_bootstrap: str) -> None:
    """Found in the chaos run: a member rewound a partition of a re-created topic in the store,
    then stopped before reading it again. Kafka's committed offset stayed past records never
    applied; the next member read from there, skipped them for good and, its lag never 0, never
    stopped as idle. The store's offsets decide where a member reads (here the store lost the
    partition's events and its offset went back to 0, as a rewind leaves it)."""
    _, engine = _declared_db(tmp_path)
    topics, group, tag = _topics(), _group(), uuid.uuid4().hex[:6]
    send_lines(_lines(tag, 30), bootstrap=kafka_bootstrap, topics=topics, mode="structured", partitions=1)
    assert _worker(engine, kafka_bootstrap, topics, group).run(install_signals=False).ingested == 30
    assert rewind_stored(engine, group, (topics.transfers, 0), 30, 0)
    (tmp_path / "other").mkdir()
    _, fresh = _declared_db(tmp_path / "other")  # a store holding none of the 30, offset 0 as rewound
    with engine.connect() as conn, fresh.begin() as target:
        rows = conn.exec_driver_sql("SELECT group_id, topic, partition, next_offset FROM consumer_offset").all()
        target.exec_driver_sql("INSERT INTO consumer_offset (group_id, topic, partition, next_offset) VALUES (?, ?, ?, ?)",
                               [tuple(r) for r in rows])
    worker = _worker(fresh, kafka_bootstrap, topics, group, outage_timeout=20)
    deadline = threading.Timer(120, worker.stop)  # the old worker never stopped: stop it to fail, not hang
    deadline.start()
    try:
        totals = worker.run(install_signals=False)
    finally:
        deadline.cancel()
    assert totals.ingested == 30 and table_counts(fresh)["event"] == 30
    assert group_status(fresh, group, topics, kafka_bootstrap).lag == 0


def _one_dead_letter(engine: sa.Engine, bootstrap: str, topics: Topics, group: str, ingested: int) -> tuple[Any, dict[str, bytes]]:
    """A worker's run (within 90 s, ~6-10 s unloaded: no outage retried for ever) that
    dead-letters one record; that record as forwarded, and its headers."""
    started = time.monotonic()
    totals = _worker(engine, bootstrap, topics, group, outage_timeout=20).run(install_signals=False)
    assert totals.model_dump() == {"ingested": ingested, "duplicates": 0, "dead_lettered": 1}
    assert time.monotonic() - started < 90
    [record] = _dead_letter_topic(bootstrap, topics.dead_letter, 1)
    return record, dict(record.headers)


def _stops_within(process: Any, seconds: float) -> float:
    started = time.monotonic()
    try:
        process.wait(timeout=seconds)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return time.monotonic() - started


@pytest.mark.slow
@pytest.mark.clocked  # its clock (S + 5 s) is the contract's: measured alone, not beside other tests
def test_an_idle_stop_then_a_restart_in_the_same_group_consumes_everything(tmp_path: Path, kafka_bootstrap: str) -> None:
    """Finding 4: `--max-events 1 --stop-when-idle 3` on empty topics took 24.6 s, and a worker
    started next in that group sat in its join for minutes (the first had left mid-join). With
    the CLI's default session timeout, as an operator runs it."""
    db, engine = _declared_db(tmp_path)
    topics, group, tag = _topics(), _group(), uuid.uuid4().hex[:6]
    ensure_topics(kafka_bootstrap, topics, 3)

    def consume(name: str, *extra: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = tmp_path / f"{name}.log"  # a file, not a pipe: nobody reads a pipe while the test waits
        with log.open("wb") as err, (tmp_path / f"{name}.out").open("wb") as out:
            return subprocess.Popen([sys.executable, "-m", "registry", "--db", db, "--json", "consume", "--group", group,
                                     "--bootstrap-servers", kafka_bootstrap, "--transfers-topic", topics.transfers,
                                     "--disclosures-topic", topics.disclosures, "--dead-letter-topic", topics.dead_letter,
                                     *extra], cwd=ROOT, stdout=out, stderr=err), log

    first, log = consume("first", "--max-events", "1", "--stop-when-idle", "3")
    took = _stops_within(first, 60)
    assert first.returncode == 0, log.read_text()
    # the contract's S + 5 s, interpreter start and imports included (a join still in flight at S
    # is let finish first: on tansu a first join takes half the session timeout to all of it: 3-6 s by default)
    assert took < 3 + 5, f"{took:.1f} s\n{log.read_text()}"
    send_lines(_lines(tag, 2000), bootstrap=kafka_bootstrap, topics=topics, mode="structured", partitions=3)
    second, log = consume("second", "--stop-when-idle", "3")
    took = _stops_within(second, 6 + 10 + 3 + 10)  # session timeout + 10 s to join, the idle time, margin
    assert second.returncode == 0, f"{took:.1f} s\n{(tmp_path / 'first.log').read_text()}\n{log.read_text()}"
    assert orjson.loads((tmp_path / "second.out").read_bytes())["ingested"] == 2000, took


@pytest.mark.slow
@pytest.mark.clocked  # a 10 s clock of the contract: measured alone, not beside other tests
@pytest.mark.parametrize("state", ["joining", "polling", "outage"])
def test_sigterm_ends_a_worker_within_10_s_in_any_state(tmp_path: Path, kafka_bootstrap: str, state: str) -> None:
    """Finding 4: SIGTERM did not end a worker waiting in its join, nor one retrying an outage."""
    db, _ = _declared_db(tmp_path)
    topics, group = _topics(), _group()
    with refused_port() as refused:
        bootstrap = f"127.0.0.1:{refused}" if state == "outage" else kafka_bootstrap  # outage: bootstrap retried
        if state != "outage":
            ensure_topics(kafka_bootstrap, topics, 3)
        worker = _consume_cli(db, bootstrap, topics, group)
        wanted = {"joining": '"subscribed"', "polling": '"joined"', "outage": '"retry"'}[state]
        seen = _wait_for(worker, wanted)
        if state == "joining":
            assert '"joined"' not in seen
        worker.send_signal(signal.SIGTERM)
        took = _stops_within(worker, 15)
    # a stop that ended an outage retry is not a clean finish (review finding 2): EX_TEMPFAIL
    assert took < 10 and worker.returncode == (75 if state == "outage" else 0), (took, worker.returncode)


@pytest.mark.parametrize("codec", ["gzip", "snappy", "lz4", "zstd"])
@pytest.mark.slow
def test_batches_compressed_by_a_librdkafka_producer_are_read(tmp_path: Path, kafka_bootstrap: str, codec: str) -> None:
    """Finding 9: lz4, snappy and zstd batches from confluent-kafka: nothing recorded, no exit."""
    from confluent_kafka import Producer

    _, engine = _declared_db(tmp_path)
    topics, group, tag = _topics(), _group(), uuid.uuid4().hex[:6]
    ensure_topics(kafka_bootstrap, topics, 1)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "compression.type": codec, "linger.ms": 20})
    for line in _lines(tag, 200):
        producer.produce(topics.transfers, value=line, headers=[("content-type", b"application/cloudevents+json")])
    assert producer.flush(20) == 0
    totals = _worker(engine, kafka_bootstrap, topics, group).run(install_signals=False)
    assert totals.ingested == 200


def test_a_batch_the_client_cannot_decode_is_a_named_error(tmp_path: Path, kafka_bootstrap: str,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a codec package the worker stops at once naming the cause (it retried silently)."""
    from confluent_kafka import Producer
    from kafka.record import default_records

    _, engine = _declared_db(tmp_path)
    topics, group, tag = _topics(), _group(), uuid.uuid4().hex[:6]
    ensure_topics(kafka_bootstrap, topics, 1)
    producer = Producer({"bootstrap.servers": kafka_bootstrap, "compression.type": "zstd", "linger.ms": 20})
    for line in _lines(tag, 20):
        producer.produce(topics.transfers, value=line)
    assert producer.flush(20) == 0
    monkeypatch.setattr(default_records.codecs, "has_zstd", lambda: False)
    started = time.monotonic()
    with pytest.raises(UndecodableBatchError, match="zstd"):
        _worker(engine, kafka_bootstrap, topics, group, outage_timeout=60).run(install_signals=False)
    assert time.monotonic() - started < 45  # ~5-8 s unloaded; the silent retry it replaced lasted the 60 s outage


@pytest.mark.slow
def test_a_record_nested_300_deep_is_dead_lettered_and_the_partition_moves_on(tmp_path: Path, kafka_bootstrap: str) -> None:
    """Review finding 1: the deep record's dead-letter copy raised TypeError: every run failed on
    the same batch."""
    _, engine = _declared_db(tmp_path)
    topics, group, tag = _topics(), _group(), uuid.uuid4().hex[:6]
    ensure_topics(kafka_bootstrap, topics, 1)
    deep = orjson.dumps(transfer(f"{tag}-deep")).replace(b'"data":{', b'"data":{"x":' + b"[" * 300 + b'"z"' + b"]" * 300 + b",", 1)
    _produce(kafka_bootstrap, topics.transfers, [_lines(f"{tag}a", 1)[0], deep, _lines(f"{tag}b", 1)[0]])
    totals = _worker(engine, kafka_bootstrap, topics, group, outage_timeout=20).run(install_signals=False)
    assert totals.model_dump() == {"ingested": 2, "duplicates": 0, "dead_lettered": 1}
    [forwarded] = _dead_letter_topic(kafka_bootstrap, topics.dead_letter, 1)
    assert dict(forwarded.headers)["dlq_reason"] == b"invalid_json" and forwarded.value == deep
    assert [d.reason for d in list_dead_letters(engine)] == ["invalid_json"]


def _wait_for(process: Any, wanted: str, seconds: float = 60) -> str:
    """The process's stderr until ``wanted`` shows (non-blocking reads)."""
    assert process.stderr is not None
    fd = process.stderr.fileno()
    os.set_blocking(fd, False)
    seen, deadline = "", time.monotonic() + seconds
    while time.monotonic() < deadline and wanted not in seen:
        try:
            seen += os.read(fd, 65536).decode("utf-8", "replace")
        except BlockingIOError:
            time.sleep(0.05)
    assert wanted in seen, seen
    return seen


@pytest.mark.slow
@pytest.mark.clocked  # a 10 s clock of the contract: measured alone, not beside other tests
def test_sigterm_ends_a_worker_waiting_on_a_locked_sqlite_store_within_10_s(tmp_path: Path, kafka_bootstrap: str) -> None:
    """Review finding 2: SQLite's busy wait (30 s, in C) kept the signal handler from running: the
    worker ignored SIGTERM until the lock was released. The stop ends the outage retry: exit 75
    (the batch was not committed), and a rerun stores every record."""
    db, engine = _declared_db(tmp_path)
    topics, group, tag = _topics(), _group(), uuid.uuid4().hex[:6]
    send_lines(_lines(tag, 20), bootstrap=kafka_bootstrap, topics=topics, mode="structured", partitions=1)
    holder = subprocess.Popen([sys.executable, "-c", "import sqlite3, sys, time\n"
                               f"c = sqlite3.connect({str(tmp_path / 'registry.db')!r}, isolation_level=None)\n"
                               "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); time.sleep(120)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        worker = _consume_cli(db, kafka_bootstrap, topics, group)
        _wait_for(worker, '"joined"')
        time.sleep(3)  # the batch is polled and waits on the lock
        worker.send_signal(signal.SIGTERM)
        took = _stops_within(worker, 40)
        assert took < 10 and worker.returncode == 75, (took, worker.returncode)
        assert worker.stdout is not None and orjson.loads(worker.stdout.read())["ingested"] == 0
    finally:
        holder.kill()
        holder.wait()
    totals = _worker(engine, kafka_bootstrap, topics, group).run(install_signals=False)
    assert totals.ingested == 20 and table_counts(engine)["event"] == 20


@pytest.mark.slow
@pytest.mark.clocked  # a 10 s clock of the contract: measured alone, not beside other tests
def test_a_forced_stop_prints_the_totals_and_exits_75(tmp_path: Path, kafka_bootstrap: str) -> None:
    """Review findings 2 and 7: the watchdog exited 0 and dropped the --json totals. A write that
    never returns (a hang no timeout ends) is simulated; the rest is the real CLI."""
    db, _ = _declared_db(tmp_path)
    topics, group, tag = _topics(), _group(), uuid.uuid4().hex[:6]
    send_lines(_lines(tag, 5), bootstrap=kafka_bootstrap, topics=topics, mode="structured", partitions=1)
    script = ("import sys, threading\nfrom registry.intake.ingest import Ingestor\n"
              "Ingestor.write = lambda *a, **k: threading.Event().wait()\n"
              "from registry.cli import main\nsys.argv = ['registry', *sys.argv[1:]]\nmain()\n")
    args = ["--db", db, "--json", "consume", "--group", group, "--bootstrap-servers", kafka_bootstrap,
            "--transfers-topic", topics.transfers, "--disclosures-topic", topics.disclosures,
            "--dead-letter-topic", topics.dead_letter, "--session-timeout-ms", "6000", "--heartbeat-interval-ms", "1000"]
    worker = subprocess.Popen([sys.executable, "-c", script, *args], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    _wait_for(worker, '"joined"')
    time.sleep(2)
    worker.send_signal(signal.SIGTERM)
    took = _stops_within(worker, 30)
    assert took < 10 and worker.returncode == 75, (took, worker.returncode)
    assert worker.stdout is not None
    assert orjson.loads(worker.stdout.read()) == {"ingested": 0, "duplicates": 0, "dead_lettered": 0}


@pytest.mark.slow
def test_a_record_with_a_9_mib_header_is_too_large_and_the_partition_moves_on(tmp_path: Path, kafka_bootstrap: str) -> None:
    """Review finding 3: a 9 MiB header on a small value was forwarded whole: the producer refused
    it (MessageSizeTooLargeError), retried as an outage for ever: the partition was blocked."""
    _, engine = _declared_db(tmp_path)
    topics, group, tag = _topics(), _group(), uuid.uuid4().hex[:6]
    ensure_topics(kafka_bootstrap, topics, 1)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", max_request_size=32 * 1024 * 1024)
    plain = [("content-type", b"application/cloudevents+json")]
    producer.send(topics.transfers, value=_lines(f"{tag}a", 1)[0], headers=plain)
    producer.send(topics.transfers, value=b"not json", headers=[*plain, ("trace", b"a" * (9 * MAX_EVENT_BYTES))])
    producer.send(topics.transfers, value=_lines(f"{tag}b", 1)[0], headers=plain)
    producer.flush()
    producer.close()
    record, headers = _one_dead_letter(engine, kafka_bootstrap, topics, group, ingested=2)
    assert headers["dlq_reason"] == b"too_large" and record.value == b"not json" and "dlq_truncated_headers" in headers
    assert len(record.value) + sum(len(k) + len(v) for k, v in record.headers) <= MAX_EVENT_BYTES


@pytest.mark.parametrize("how", ["ids_nulled", "broker_without_ids"])
@pytest.mark.slow
def test_a_re_created_topic_is_read_from_its_start_without_topic_ids(tmp_path: Path, kafka_bootstrap: str, how: str) -> None:
    """Review finding 4: rows without a topic id (a store upgraded by 0005) adopted whatever id the
    broker reported, and a broker without ids fell back to the log end only: a re-created topic
    with a longer log lost the records below the stored offset. The contract's fallback: the
    record at the stored offset minus one is compared with the one applied last."""
    _, engine = _declared_db(tmp_path)
    topics, group, tag = _topics(), _group(), uuid.uuid4().hex[:6]
    extra: dict[str, Any] = {"topic_ids": False} if how == "broker_without_ids" else {}
    send_lines(_lines(f"{tag}-old", 40), bootstrap=kafka_bootstrap, topics=topics, mode="structured", partitions=1)
    assert _worker(engine, kafka_bootstrap, topics, group, **extra).run(install_signals=False).ingested == 40
    if how == "ids_nulled":
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE consumer_offset SET topic_id = NULL"))
    delete_topics(kafka_bootstrap, [topics.transfers, topics.disclosures])
    send_lines(_lines(f"{tag}-new", 60), bootstrap=kafka_bootstrap, topics=topics, mode="structured", partitions=1)
    totals = _worker(engine, kafka_bootstrap, topics, group, **extra).run(install_signals=False)
    assert totals.ingested == 60 and table_counts(engine)["event"] == 100
    after = group_status(engine, group, topics, kafka_bootstrap)
    assert after.lag == 0 and [p.stored_offset for p in after.partitions if p.topic == topics.transfers] == [60]
    # and a topic that was not re-created is not read again (its last record verifies)
    again = _worker(engine, kafka_bootstrap, topics, group, **extra).run(install_signals=False)
    assert again.model_dump() == {"ingested": 0, "duplicates": 0, "dead_lettered": 0}
