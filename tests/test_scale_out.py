"""Scale-out and faults with real processes and a real broker: several workers in one group on
one PostgreSQL database, SIGKILLs while the stream flows, a broker cut, a database crash, and
``status`` / ``/metrics``. The oracle is a file ingest of the same stream into a fresh store."""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import sqlalchemy as sa

from registry.intake.ingest import Ingestor, lines_of
from registry.model.store import open_store
from registry.stream.devbroker import free_port
from registry.stream.kafka import Topics, send_lines

from .faults import PrivatePostgres, proxied_broker, refused_port, wait_until
from .test_kafka import _consume_cli, _shared, _stream, _topics

ORACLE_TABLES = ("flow_day", "flow_hour", "subject_flow")


def _contents(engine: sa.Engine) -> dict[str, Any]:
    """What a store answers from: every aggregate row, the event count, dead letters by reason."""
    with engine.connect() as conn:
        out: dict[str, Any] = {t: _merged_shards(conn, t) for t in ORACLE_TABLES}
        out["events"] = conn.exec_driver_sql("SELECT COUNT(*) FROM event").scalar_one()
        out["dead"] = Counter(r for (r,) in conn.exec_driver_sql("SELECT reason FROM dead_letter"))
    return out


def _applied(engine: sa.Engine) -> tuple[int, int]:
    """Events and dead letters stored so far."""
    with engine.connect() as conn:
        return tuple(conn.exec_driver_sql("SELECT (SELECT COUNT(*) FROM event), (SELECT COUNT(*) FROM dead_letter)").one())  # type: ignore[return-value]


def _merged_shards(conn: sa.Connection, table: str) -> list[tuple[Any, ...]]:
    """Each aggregate row with its shards (the Kafka partitions that wrote it) added up: a
    consumed store splits a key over the partitions its events came from, a file ingest writes
    one shard, and every answer sums over shards."""
    columns = [c["name"] for c in sa.inspect(conn).get_columns(table)]
    sums, firsts, lasts = {"events", "records"}, {"first_seen"}, {"last_seen"}
    key = [c for c in columns if c not in sums | firsts | lasts | {"shard"}]
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in conn.exec_driver_sql(f"SELECT * FROM {table}").mappings():
        into = merged.setdefault(tuple(row[c] for c in key), {})
        for c in sums & set(columns):
            into[c] = into.get(c, 0) + row[c]
        for c in firsts:
            into[c] = min(into.get(c, row[c]), row[c])
        for c in lasts:
            into[c] = max(into.get(c, row[c]), row[c])
    return sorted(k + tuple(v[c] for c in sorted(v)) for k, v in merged.items())


def _declare(engine: sa.Engine) -> None:
    from registry.model.declarations import declare
    from registry.model.manifest import load_manifest

    from .conftest import EXAMPLE_MANIFEST

    declare(engine, load_manifest(EXAMPLE_MANIFEST))


def _file_ingest(url: str, lines: list[bytes]) -> dict[str, Any]:
    engine = open_store(url)
    Ingestor(engine).ingest(lines_of(lines))
    return _contents(engine)


@pytest.mark.slow
def test_three_workers_on_a_fresh_postgres_database(pg_databases: Any, kafka_bootstrap: str) -> None:
    topics, group = _topics(), f"g{uuid.uuid4().hex[:6]}"
    lines, expected = _stream(Path("."), 12_000, seed=31)
    send_lines(lines, bootstrap=kafka_bootstrap, topics=topics, mode="structured", partitions=4)
    db = pg_databases()  # no schema: the three workers migrate it at once
    workers = [_consume_cli(db, kafka_bootstrap, topics, group, "--stop-when-idle", "8", "--batch-size", "500") for _ in range(3)]
    results, held = [], []
    for w in workers:
        out, err = w.communicate(timeout=300)
        assert w.returncode == 0, err[-3000:]
        results.append(json.loads(out))
        held.append(_shared(err, 8))
    assert all(held), f"a worker did not share the 8 partitions: {held}"
    consumed, clean = _contents(open_store(db)), _file_ingest(pg_databases(), lines)
    assert sum(r["ingested"] for r in results) == consumed["events"] == clean["events"] > 0
    assert sum(r["dead_lettered"] for r in results) == sum(clean["dead"].values())
    assert consumed == clean


@pytest.mark.slow
def test_sigkill_five_times_while_the_stream_flows(pg_databases: Any, kafka_bootstrap: str) -> None:
    topics, group = _topics(), f"g{uuid.uuid4().hex[:6]}"
    lines, expected = _stream(Path("."), 60_000, seed=37)
    send_lines(lines[:5000], bootstrap=kafka_bootstrap, topics=topics, mode="structured", partitions=3)
    db = pg_databases()
    engine = open_store(db)
    _declare(engine)

    def publish_rest() -> None:  # the stream keeps flowing while workers die
        for start in range(5000, len(lines), 5000):
            send_lines(lines[start:start + 5000], bootstrap=kafka_bootstrap, topics=topics, mode="structured")
            time.sleep(1.5)

    publisher = threading.Thread(target=publish_rest)
    publisher.start()
    rng = random.Random(7)
    for _ in range(5):
        worker = _consume_cli(db, kafka_bootstrap, topics, group, "--batch-size", "1000")
        time.sleep(rng.uniform(3.5, 6.0))
        os.kill(worker.pid, signal.SIGKILL)
        worker.communicate()
    publisher.join()
    final = _consume_cli(db, kafka_bootstrap, topics, group, "--stop-when-idle", "8")
    out, err = final.communicate(timeout=400)
    assert final.returncode == 0, err[-3000:]
    # every event once (the oracle is the generator's count; a file ingest costs this test 15 s)
    consumed = _contents(engine)
    assert consumed["events"] == expected["valid"]
    assert consumed["dead"] == Counter(expected["dead"])
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT SUM(events) FROM flow_day").scalar_one() == expected["flow_events"]
        assert conn.exec_driver_sql("SELECT COUNT(*), COUNT(DISTINCT (source, event_id)) FROM event").one() == (
            expected["valid"], expected["valid"])


def _progress(engine: sa.Engine) -> int:
    try:
        with engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT COUNT(*) FROM event").scalar_one())
    except sa.exc.DBAPIError:
        return 0


def _retries(log: Path, since: int = 0) -> list[dict[str, Any]]:
    """The retry lines the worker logged after byte ``since`` of its log."""
    whole = log.read_bytes()[since:].decode().split("\n")[:-1]  # a line still being written is left for the next look
    return [json.loads(line) for line in whole if '"event": "retry"' in line]


def _fault_felt(log: Path, since: int, what: tuple[str, ...], least_s: float) -> bool:
    """Keep a fault for at least ``least_s`` and until the worker has retried twice since it began
    (records fetched before a broker cut are applied first, however long that takes here)."""
    began = time.monotonic()
    felt = wait_until(lambda: len([r for r in _retries(log, since) if r["what"] in what]) >= 2, 90)
    time.sleep(max(0.0, least_s - (time.monotonic() - began)))
    return felt


@pytest.mark.slow
def test_worker_survives_a_broker_cut(tmp_path: Path) -> None:
    lines, expected = _stream(tmp_path, 30_000, seed=41)
    db, clean_db = f"sqlite:///{tmp_path / 'consumed.db'}", f"sqlite:///{tmp_path / 'clean.db'}"
    engine = open_store(db)
    _declare(engine)  # few dead letters: the worker polls through the cut instead of waiting on their acks
    _declare(open_store(clean_db))
    with proxied_broker(tmp_path / "tansu.log") as (bootstrap, proxy):
        topics, group = _topics(), f"g{uuid.uuid4().hex[:6]}"
        send_lines(lines[:22_000], bootstrap=bootstrap, topics=topics, mode="structured")
        with (tmp_path / "worker.log").open("w") as log:
            # no idle stop: an idle clock running through the cut could stop the worker before the
            # rest is sent; it is stopped (SIGTERM) once it has applied every valid event
            worker = _consume_cli(db, bootstrap, topics, group, "--batch-size", "500", "--outage-timeout", "90", stderr=log)
            assert wait_until(lambda: _progress(engine) > 500, 90)
            since = (tmp_path / "worker.log").stat().st_size
            proxy.cut()
            cut_at = _progress(engine)
            felt = _fault_felt(tmp_path / "worker.log", since, ("lag", "broker", "write", "read"), 12)
            proxy.restore()
            send_lines(lines[22_000:], bootstrap=bootstrap, topics=topics, mode="structured")
            clean = _file_ingest(clean_db, lines)
            wait_until(lambda: _applied(engine) == (clean["events"], sum(clean["dead"].values())), 240)
            worker.send_signal(signal.SIGTERM)
            worker.communicate(timeout=60)
    err = (tmp_path / "worker.log").read_text()
    assert worker.returncode == 0, err[-3000:]
    assert cut_at < 20_000, "the cut came after the stream was consumed"
    retries = _retries(tmp_path / "worker.log", since)
    assert felt and all(r["level"] == "warning" and "attempt" in r for r in retries), err[-3000:]
    consumed = _contents(engine)
    assert consumed == clean and consumed["events"] == expected["valid"]


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    try:
        cluster = PrivatePostgres()
    except (RuntimeError, OSError) as exc:
        pytest.skip(f"cannot run a private PostgreSQL cluster: {exc}")
    yield cluster
    open_store.cache_clear()
    cluster.destroy()


@pytest.mark.slow
def test_worker_survives_a_database_crash(private_postgres: PrivatePostgres, kafka_bootstrap: str, tmp_path: Path) -> None:
    lines, expected = _stream(tmp_path, 30_000, seed=43)
    topics, group = _topics(), f"g{uuid.uuid4().hex[:6]}"
    send_lines(lines, bootstrap=kafka_bootstrap, topics=topics, mode="structured")
    db = private_postgres.create_database("consumed")
    engine = sa.create_engine(db, pool_pre_ping=True)
    with (tmp_path / "worker.log").open("w") as log:
        worker = _consume_cli(db, kafka_bootstrap, topics, group, "--stop-when-idle", "8", "--batch-size", "500",
                              "--outage-timeout", "90", stderr=log)
        assert wait_until(lambda: _progress(engine) > 500, 120)  # early: the crash must land mid-stream
        engine.dispose()
        since = (tmp_path / "worker.log").stat().st_size
        private_postgres.crash()
        felt = _fault_felt(tmp_path / "worker.log", since, ("write", "read"), 10)
        private_postgres.start()
        worker.communicate(timeout=300)
    err = (tmp_path / "worker.log").read_text()
    assert worker.returncode == 0, err[-3000:]
    assert felt, "the crash came after the stream was consumed"
    consumed, clean = _contents(open_store(db)), _file_ingest(private_postgres.create_database("clean"), lines)
    assert consumed["events"] == clean["events"] > 20_000
    assert consumed == clean


def _status(db: str, bootstrap: str, topics: Topics, group: str) -> dict[str, Any]:
    import subprocess
    import sys

    from .conftest import ROOT

    done = subprocess.run([sys.executable, "-m", "registry", "--db", db, "--json", "status", "--group", group, "--bootstrap-servers",
                           bootstrap, "--transfers-topic", topics.transfers, "--disclosures-topic", topics.disclosures],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


@pytest.mark.slow
def test_status_lag_and_metrics(tmp_path: Path, kafka_bootstrap: str) -> None:
    lines, expected = _stream(tmp_path, 3000, seed=47)
    topics, group = _topics(), f"g{uuid.uuid4().hex[:6]}"
    send_lines(lines, bootstrap=kafka_bootstrap, topics=topics, mode="structured")
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    from registry.model.declarations import declare
    from registry.model.manifest import load_manifest

    from .conftest import EXAMPLE_MANIFEST

    declare(open_store(db), load_manifest(EXAMPLE_MANIFEST))
    port = free_port()
    # stopped (SIGTERM) once the scrape shows everything: an idle stop could come before a starved scrape
    worker = _consume_cli(db, kafka_bootstrap, topics, group, "--stop-when-idle", "60", "--metrics-port", str(port))
    scraped = ""
    deadline = time.monotonic() + 120
    while worker.poll() is None and time.monotonic() < deadline:
        try:
            scraped = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except httpx.HTTPError:
            pass
        lags = [line for line in scraped.splitlines() if line.startswith("registry_consumer_lag{")]
        if f"registry_events_ingested_total {float(expected['valid'])}" in scraped and lags and all(
                line.endswith(" 0.0") for line in lags):
            break
        time.sleep(0.3)
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err[-3000:]
    assert f"registry_events_ingested_total {float(expected['valid'])}" in scraped
    assert "registry_events_duplicate_total 0.0" in scraped and "registry_batch_seconds_bucket" in scraped
    assert 'registry_dead_letters_total{reason="invalid_json"} 2.0' in scraped
    assert f'registry_consumer_lag{{partition="0",topic="{topics.transfers}"}} 0.0' in scraped

    status = _status(db, kafka_bootstrap, topics, group)
    assert status["lag"] == 0 and status["events"] == expected["valid"] and status["group"] == group
    assert status["dead_letters"] == sum(expected["dead"].values()) and status["manifest_version"] == 1
    assert status["last_event_time"] is not None
    assert sorted((p["topic"], p["partition"]) for p in status["partitions"]) == sorted(
        (t, p) for t in (topics.transfers, topics.disclosures) for p in range(3))
    assert all(p["stored_offset"] == p["end_offset"] for p in status["partitions"] if p["end_offset"])
    assert sum(p["end_offset"] for p in status["partitions"]) == len(lines)

    more, _ = _stream(tmp_path, 500, seed=48)
    send_lines(more[:137], bootstrap=kafka_bootstrap, topics=topics, mode="structured")
    status = _status(db, kafka_bootstrap, topics, group)
    assert status["lag"] == 137 == sum(p["lag"] for p in status["partitions"]), status

    with refused_port() as port:
        unreachable = _status(db, f"127.0.0.1:{port}", topics, group)
    assert unreachable["lag"] is None and all(p["end_offset"] is None and p["lag"] is None for p in unreachable["partitions"])
    assert unreachable["events"] == expected["valid"]


def test_web_metrics_need_no_token(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from examples.blausen.generate import generate
    from registry.web import create_app
    from registry.web.tokens import create_token

    db = f"sqlite:///{tmp_path / 'web.db'}"
    token = create_token(open_store(db), "service", "svc").token
    client = TestClient(create_app(db))
    body = b"[" + b",".join(line for line, reason in generate(300, seed=3, poison_per_reason=1)
                            if reason not in ("invalid_json", "too_large")) + b"]"
    answer = client.post("/api/events", content=body, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert answer.status_code == 200
    scraped = client.get("/metrics")
    assert scraped.status_code == 200 and scraped.headers["content-type"].startswith("text/plain")
    for name in ("registry_events_ingested_total", "registry_events_duplicate_total", "registry_dead_letters_total",
                 "registry_batch_seconds_bucket", "registry_consumer_lag"):
        assert name in scraped.text
    assert 'registry_dead_letters_total{reason="raw_identifier"}' in scraped.text
    assert "Bearer" not in scraped.text and "@" not in scraped.text  # nothing but codes in labels


@pytest.mark.slow
@pytest.mark.clocked  # the outage timeout is a clock: measured alone
def test_outage_timeout_exits_non_zero(tmp_path: Path) -> None:
    """No broker at all: retries logged as JSON lines, then exit 2 once --outage-timeout has passed."""
    import subprocess
    import sys

    from .conftest import ROOT

    started = time.monotonic()
    with refused_port() as port:
        done = subprocess.run([sys.executable, "-m", "registry", "--db", f"sqlite:///{tmp_path / 'r.db'}", "--json", "consume",
                               "--bootstrap-servers", f"127.0.0.1:{port}", "--outage-timeout", "12"],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - started
    assert done.returncode == 2 and done.stdout == ""
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [line["event"] for line in lines][-1] == "outage_timeout" and lines[0]["event"] == "retry"
    assert "error: cannot reach Kafka" in done.stderr
    assert 12 <= elapsed < 45  # one bootstrap attempt (10 s) past the timeout at most, plus start-up
