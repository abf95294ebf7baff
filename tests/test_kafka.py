"""Kafka end to end, against a real broker: emitter, publish, consumer group, dead-letter topic,
signals, crashes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from kafka import KafkaConsumer

from examples.blausen.generate import generate
from registry.exceptions import EventError
from registry.model.declarations import declare
from registry.model.store import open_store
from registry.stream.emitter import Emitter
from registry.stream.kafka import Topics, send_lines

from .conftest import EXAMPLE_MANIFEST, ROOT, table_counts
from .helpers import ref

FAST_GROUP = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 1000}


def _topics() -> Topics:
    tag = uuid.uuid4().hex[:8]
    return Topics(f"t{tag}.transfers", f"t{tag}.disclosures", f"t{tag}.dead-letter")


def _stream(tmp_path: Path, events: int, seed: int) -> tuple[list[bytes], dict[str, Any]]:
    lines, dead = [], Counter()
    valid_flows = 0
    for line, reason in generate(events, seed, poison_per_reason=2):
        lines.append(line)
        if reason:
            dead[reason] += 1
        else:
            valid_flows += 1  # each transfer adds to exactly one flow row (its signature)
    return lines, {"valid": events - sum(dead.values()), "dead": dict(dead), "flow_events": valid_flows}


def _consume_cli(db: str, bootstrap: str, topics: Topics, group: str, *extra: str, **popen: Any) -> subprocess.Popen[str]:
    args = [sys.executable, "-m", "registry", "--db", db, "--json", "consume", "--group", group,
            "--bootstrap-servers", bootstrap, "--transfers-topic", topics.transfers,
            "--disclosures-topic", topics.disclosures, "--dead-letter-topic", topics.dead_letter,
            "--session-timeout-ms", "6000", "--heartbeat-interval-ms", "1000", *extra]
    return subprocess.Popen(args, cwd=ROOT, text=True, **{"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **popen})


def _shared(stderr: str, total: int) -> bool:
    """The worker held some but not all of the ``total`` partitions at some point (its ``joined``
    log lines): it shared the work, whatever it found left to do on a starved machine."""
    joins = [json.loads(line) for line in stderr.splitlines() if line.startswith("{") and '"joined"' in line]
    return any(0 < j["partitions"] < total for j in joins if j.get("event") == "joined")


def _dead_letter_topic(bootstrap: str, topic: str, expected: int) -> list[Any]:
    # stops at ``expected``: the 30 s only bound a starved machine's first fetch
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None,
                             consumer_timeout_ms=30_000)
    records = []
    for record in consumer:
        records.append(record)
        if len(records) >= expected:
            break
    consumer.close()
    return records


def _declared_db(tmp_path: Path) -> tuple[str, sa.Engine]:
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    engine = open_store(db)
    from registry.model.manifest import load_manifest

    declare(engine, load_manifest(EXAMPLE_MANIFEST))
    return db, engine


def _published(tmp_path: Path, bootstrap: str, events: int, seed: int) -> tuple[Topics, str, sa.Engine, dict[str, Any], str]:
    """Fresh topics with a generated stream on them, a declared store, and a fresh group name."""
    topics = _topics()
    db, engine = _declared_db(tmp_path)
    lines, expected = _stream(tmp_path, events, seed=seed)
    send_lines(lines, bootstrap=bootstrap, topics=topics, mode="structured")
    return topics, db, engine, expected, f"g{uuid.uuid4().hex[:6]}"


@pytest.mark.slow
def test_emitter_validates_before_sending_and_the_worker_records(tmp_path: Path, kafka_bootstrap: str) -> None:
    from consumers.worker import Worker, WorkerConfig

    topics = _topics()
    db, engine = _declared_db(tmp_path)
    with Emitter("//services/checkout", bootstrap_servers=kafka_bootstrap, topics=topics, manifest=EXAMPLE_MANIFEST) as emit:
        emit.transfer(recipient="stripe", data_categories=["user.financial.credit_card"],
                      purpose="essential.service.payment_processing", legal_basis="contract", subject_refs=[ref("customer-42")])
        with pytest.raises(EventError) as info:
            emit.transfer(recipient="stripe", data_categories=["user.telepathy"], purpose="essential.service.payment_processing",
                          legal_basis="contract")
        assert info.value.reason == "unknown_category" and info.value.path == "data.data_categories[0]"
        with pytest.raises(EventError) as info:
            emit.transfer(recipient="stripe", data_categories=["user.contact.email"], purpose="essential.service.payment_processing",
                          legal_basis="contract", subject_refs=["jane@example.org"])
        assert info.value.reason == "raw_identifier"
    with Emitter("//services/web", bootstrap_servers=kafka_bootstrap, topics=topics, mode="binary") as emit:
        emit.transfer(recipient="google-analytics", data_categories=["user.device.cookie_id"], purpose="analytics.reporting",
                      legal_basis="consent")
    with Emitter("//services/case-management", bootstrap_servers=kafka_bootstrap, topics=topics) as emit:
        emit.disclosure(request_id="SUB-9", authority="District Court of Harris County", authority_country="US",
                        instrument="subpoena", received_at="2026-03-02T09:00:00Z", outcome="produced",
                        data_categories=["user.contact.email"], subject_refs=[ref("customer-42")], notice="given")
        with pytest.raises(EventError) as info:
            emit.disclosure(request_id="SUB-10", authority="X", authority_country="US", instrument="subpoena",
                            received_at="2026-03-02T09:00:00Z", outcome="pending", notice="delayed")
        assert info.value.path == "data.notice_due"
    totals = Worker(engine, WorkerConfig(bootstrap=kafka_bootstrap, group=f"g{uuid.uuid4().hex[:6]}", topics=topics,
                                         stop_when_idle=3, **FAST_GROUP)).run(install_signals=False)
    assert totals.model_dump() == {"ingested": 3, "duplicates": 0, "dead_lettered": 0}
    with engine.connect() as conn:
        assert sorted(conn.exec_driver_sql("SELECT source, recipient FROM event WHERE type = 'registry.transfer.v1'").all()) == [
            ("//services/checkout", "stripe"), ("//services/web", "google-analytics")]
    from registry.answers.questions import subject

    assert [(d.request_id, d.outcome) for d in subject(engine, ref("customer-42")).disclosures] == [("SUB-9", "produced")]


@pytest.mark.slow
def test_end_to_end_10k_structured_and_binary(tmp_path: Path, kafka_bootstrap: str) -> None:
    from consumers.worker import Worker, WorkerConfig

    topics = _topics()
    db, engine = _declared_db(tmp_path)
    lines, expected = _stream(tmp_path, 10_000, seed=5)
    half = len(lines) // 2
    assert send_lines(lines[:half], bootstrap=kafka_bootstrap, topics=topics, mode="structured") == half
    assert send_lines(lines[half:], bootstrap=kafka_bootstrap, topics=topics, mode="binary") == len(lines) - half
    totals = Worker(engine, WorkerConfig(bootstrap=kafka_bootstrap, group=f"g{uuid.uuid4().hex[:6]}", topics=topics,
                                         stop_when_idle=4, **FAST_GROUP)).run(install_signals=False)
    dead_total = sum(expected["dead"].values())
    assert totals.model_dump() == {"ingested": expected["valid"], "duplicates": 0, "dead_lettered": dead_total}
    assert table_counts(engine)["event"] == expected["valid"]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT SUM(events) FROM flow_day").scalar_one() == expected["flow_events"]
        table = Counter(r for (r,) in conn.exec_driver_sql("SELECT reason FROM dead_letter"))
    assert dict(table) == expected["dead"]
    forwarded = _dead_letter_topic(kafka_bootstrap, topics.dead_letter, dead_total)
    reasons = Counter(dict(r.headers)["dlq_reason"].decode() for r in forwarded)
    assert dict(reasons) == expected["dead"]
    sample = forwarded[0]
    headers = dict(sample.headers)
    assert {"dlq_reason", "dlq_detail", "dlq_topic", "dlq_partition", "dlq_offset"} <= set(headers)
    assert headers["dlq_topic"].decode() == topics.transfers
    assert sample.value  # the original bytes, untouched


@pytest.mark.slow
def test_two_workers_share_a_four_partition_topic(tmp_path: Path, kafka_bootstrap: str) -> None:
    topics = _topics()
    db, engine = _declared_db(tmp_path)
    lines, expected = _stream(tmp_path, 6000, seed=9)
    send_lines(lines, bootstrap=kafka_bootstrap, topics=topics, mode="structured", partitions=4)
    group = f"g{uuid.uuid4().hex[:6]}"
    workers = [_consume_cli(db, kafka_bootstrap, topics, group, "--stop-when-idle", "8", "--batch-size", "500") for _ in range(2)]
    results = []
    for w in workers:
        out, err = w.communicate(timeout=180)
        assert w.returncode == 0, err
        results.append((json.loads(out), err))
    # each held a share (a worker that starts late on a starved machine may find its share drained)
    assert all(_shared(err, 8) for _, err in results), "a worker did not share the 8 partitions"
    assert sum(r["ingested"] for r, _ in results) == expected["valid"]
    assert table_counts(engine)["event"] == expected["valid"]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT SUM(events) FROM flow_day").scalar_one() == expected["flow_events"]


@pytest.mark.slow
def test_sigterm_finishes_the_batch_and_commits(tmp_path: Path, kafka_bootstrap: str) -> None:
    topics, db, engine, expected, group = _published(tmp_path, kafka_bootstrap, 20_000, seed=13)
    worker = _consume_cli(db, kafka_bootstrap, topics, group, "--batch-size", "1000")
    deadline = time.monotonic() + 60
    while table_counts(engine)["event"] == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    totals = json.loads(out)
    assert 0 < totals["ingested"] and totals["ingested"] == table_counts(engine)["event"]
    # the next worker of the group starts where the first stopped: nothing twice, nothing lost
    rest = _consume_cli(db, kafka_bootstrap, topics, group, "--stop-when-idle", "4")
    out, err = rest.communicate(timeout=180)
    assert rest.returncode == 0, err
    assert totals["ingested"] + json.loads(out)["ingested"] == expected["valid"] == table_counts(engine)["event"]


@pytest.mark.slow
def test_sigkill_five_times_loses_and_doubles_nothing(tmp_path: Path, kafka_bootstrap: str) -> None:
    topics, db, engine, expected, group = _published(tmp_path, kafka_bootstrap, 100_000, seed=17)
    rng = random.Random(99)
    kills = 0
    while kills < 5:
        worker = _consume_cli(db, kafka_bootstrap, topics, group, "--batch-size", "2000")
        time.sleep(rng.uniform(3.0, 7.0))  # joins take ~3 s: kill at a random point after that
        os.kill(worker.pid, signal.SIGKILL)
        worker.communicate()
        kills += 1
        if table_counts(engine)["event"] >= expected["valid"]:
            break
    final = _consume_cli(db, kafka_bootstrap, topics, group, "--stop-when-idle", "8")
    out, err = final.communicate(timeout=600)
    assert final.returncode == 0, err
    assert table_counts(engine)["event"] == expected["valid"]
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT SUM(events) FROM flow_day").scalar_one() == expected["flow_events"]
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM dead_letter").scalar_one() == sum(expected["dead"].values())
