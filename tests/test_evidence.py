"""Evidence that survives bad input: exact dead-letter replay, poison values that only the schema
or only the database refuses (through the file, HTTP and Kafka paths), a manifest declared while
an ingestor or worker runs."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
import yaml

from registry.answers.questions import recipient_detail
from registry.intake.deadletters import list_dead_letters, replay
from registry.intake.ingest import Ingestor
from registry.model.declarations import declare
from registry.model.events import EventValidator, RawRecord
from registry.model.manifest import load_manifest, parse_manifest
from registry.model.store import open_store
from registry.stream.kafka import Topics, send_lines

from .conftest import EXAMPLE_MANIFEST, table_counts
from .helpers import ref, transfer

EXTENSION = "user.workplace.grant_number"


def _with_extension() -> Any:
    document = yaml.safe_load(EXAMPLE_MANIFEST.read_text())
    document["taxonomy"]["data_categories"].append({"key": EXTENSION, "parent": "user.workplace", "name": "Grant number"})
    return parse_manifest(yaml.safe_dump(document))


def _refused_for_the_extension() -> list[RawRecord]:
    """Numeric ids, ids that are dates, a binary-mode record, a disclosure with notice_due: what a
    pattern-based redaction would have mangled."""
    disclosure = {"specversion": "1.0", "id": "4155550123", "source": "//services/legal", "type": "registry.disclosure.v1",
                  "time": "2026-03-05T09:00:00Z",
                  "data": {"request_id": "2026-0012345", "authority": "District Court", "authority_country": "US",
                           "instrument": "court_order", "received_at": "2026-03-04T09:00:00Z", "outcome": "produced",
                           "data_categories": [EXTENSION], "subject_count": 12, "notice": "delayed", "notice_due": "2026-06-30",
                           "legal_reference": "4:26-cv-01234 of 2026-03-04"}}
    binary_data = transfer("x")["data"] | {"data_categories": [EXTENSION], "record_count": 5551234567}
    headers = [("ce_specversion", b"1.0"), ("ce_id", b"20260302"), ("ce_source", b"//services/web"),
               ("ce_type", b"registry.transfer.v1"), ("ce_time", b"2026-03-02T10:00:00Z"), ("content-type", b"application/json")]
    return [RawRecord(value=orjson.dumps(transfer("5551234567", data_categories=[EXTENSION], record_count=7,
                                                  subject_refs=[ref("p1")]))),
            RawRecord(value=orjson.dumps(transfer("2026-03-02", time="2026-03-02T00:00:00Z", data_categories=[EXTENSION, "user.name"]))),
            RawRecord(value=orjson.dumps(binary_data), headers=headers),
            RawRecord(value=orjson.dumps(disclosure))]


def test_replay_reproduces_the_original_events(declared: sa.Engine) -> None:
    originals = _refused_for_the_extension()
    first = Ingestor(declared).ingest(originals)
    assert first.model_dump() == {"ingested": 0, "duplicates": 0, "dead_lettered": 4}
    assert {r.reason for r in list_dead_letters(declared)} == {"unknown_category"}
    declare(declared, _with_extension())
    assert replay(declared).model_dump() == {"replayed": 4, "ingested": 4, "still_dead": 0}
    validator = EventValidator(_with_extension().taxonomy_view())
    expected = sorted((e.source, e.id, e.payload_hash) for e in (validator.decode(r) for r in originals))
    with declared.connect() as conn:
        stored = sorted(tuple(r) for r in conn.exec_driver_sql("SELECT source, event_id, payload_hash FROM event").all())
        due = conn.exec_driver_sql("SELECT body FROM ledger_entry").scalar_one()
    assert stored == expected
    assert '"notice_due":"2026-06-30"' in due and '"request_id":"2026-0012345"' in due
    again = Ingestor(declared).ingest(originals)  # the producer redelivers the originals: duplicates, nothing new
    assert again.model_dump() == {"ingested": 0, "duplicates": 4, "dead_lettered": 0}
    flows = {f.category: f.records for f in recipient_detail(declared, "google-analytics").flows}
    assert flows == {EXTENSION: 7 + 1 + 5551234567, "user.name": 1}


def test_a_manifest_declared_meanwhile_applies_from_the_next_batch(declared: sa.Engine) -> None:
    ingestor = Ingestor(declared)
    event = transfer("late-1", data_categories=[EXTENSION])
    assert ingestor.ingest([RawRecord(value=orjson.dumps(event))]).dead_lettered == 1
    declare(declared, _with_extension())
    assert ingestor.ingest([RawRecord(value=orjson.dumps({**event, "id": "late-2"}))]).ingested == 1


POISON_SCHEMA = transfer("poison-64", record_count=2**63)
# valid by every schema, refused only by PostgreSQL (a NUL in a text column)
POISON_DATABASE = transfer("poison-nul", source="//services/we\u0000b")


def _good(n: int, tag: str) -> list[dict[str, Any]]:
    return [transfer(f"{tag}-{i}", record_count=10**12 if i < 3 else 1) for i in range(n)]


def _expected(db_url: str, goods: int) -> dict[str, int]:
    refused = 2 if db_url.startswith("postgresql") else 1  # SQLite keeps NUL characters in text
    return {"ingested": goods + 2 - refused, "duplicates": 0, "dead_lettered": refused}


def _check_store(engine: sa.Engine, db_url: str) -> None:
    reasons = sorted((r.reason, r.detail) for r in list_dead_letters(engine))
    assert reasons[0][0] == "invalid_data" and "record_count" in reasons[0][1]
    if db_url.startswith("postgresql"):
        assert reasons[1][0] == "invalid_data" and "database refused" in reasons[1][1]
    flows = recipient_detail(engine, "google-analytics").flows
    assert sum(f.records for f in flows if f.source == "//services/web") == 6 * 10**12 + 4  # 64-bit sums, exact


def test_poison_from_a_file_is_one_dead_letter_each(db_url: str, tmp_path: Path) -> None:
    from .test_leaks import _cli

    assert _cli(db_url, "declare", str(EXAMPLE_MANIFEST)).returncode == 0
    events = _good(5, "f") + [POISON_SCHEMA, POISON_DATABASE] + _good(5, "g")
    run = _cli(db_url, "--json", "ingest", "-", stdin=b"\n".join(orjson.dumps(e) for e in events))
    assert run.returncode == 0, run.stderr
    assert orjson.loads(run.stdout) == _expected(db_url, 10)
    open_store.cache_clear()
    _check_store(open_store(db_url), db_url)


def test_poison_over_http_is_one_dead_letter_each(db_url: str) -> None:
    from fastapi.testclient import TestClient

    from registry.web import create_app
    from registry.web.tokens import create_token

    engine = open_store(db_url)
    declare(engine, load_manifest(EXAMPLE_MANIFEST))
    token = create_token(engine, "service", "poison").token
    with TestClient(create_app(db_url)) as client:
        answer = client.post("/api/events", content=orjson.dumps(_good(5, "f") + [POISON_SCHEMA, POISON_DATABASE] + _good(5, "g")),
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert answer.status_code == 200, answer.text
    assert answer.json() == _expected(db_url, 10)
    _check_store(engine, db_url)


@pytest.mark.slow
def test_poison_on_kafka_does_not_stop_the_worker(db_url: str, kafka_bootstrap: str) -> None:
    """The worker judges each record, forwards the poison to the dead-letter topic, records its
    neighbours, and keeps consuming (here until idle); a manifest declared while it runs applies
    from its next batch."""
    from consumers.worker import Worker, WorkerConfig

    tag = uuid.uuid4().hex[:8]
    topics = Topics(f"p{tag}.transfers", f"p{tag}.disclosures", f"p{tag}.dead-letter")
    engine = open_store(db_url)
    declare(engine, load_manifest(EXAMPLE_MANIFEST))
    lines = [orjson.dumps(e) for e in _good(5, "f") + [POISON_SCHEMA, POISON_DATABASE] + _good(5, "g")]
    send_lines(lines, bootstrap=kafka_bootstrap, topics=topics, mode="structured", partitions=1)
    config = WorkerConfig(bootstrap=kafka_bootstrap, group=f"g{tag}", topics=topics, stop_when_idle=3,
                          session_timeout_ms=6000, heartbeat_interval_ms=1000)
    totals = Worker(engine, config).run(install_signals=False)
    assert totals.model_dump() == _expected(db_url, 10)
    _check_store(engine, db_url)
    assert table_counts(engine)["event"] == _expected(db_url, 10)["ingested"]


@pytest.mark.slow
def test_a_running_worker_applies_a_new_manifest_from_its_next_batch(tmp_path: Path, kafka_bootstrap: str) -> None:
    import threading
    import time

    from consumers.worker import Worker, WorkerConfig

    tag = uuid.uuid4().hex[:8]
    topics = Topics(f"m{tag}.transfers", f"m{tag}.disclosures", f"m{tag}.dead-letter")
    engine = open_store(f"sqlite:///{tmp_path / 'registry.db'}")
    declare(engine, load_manifest(EXAMPLE_MANIFEST))
    send_lines([orjson.dumps(transfer("ext-1", data_categories=[EXTENSION]))], bootstrap=kafka_bootstrap, topics=topics,
               mode="structured", partitions=1)
    # it stops after the two records (a dead letter counts), not when idle: on a starved machine
    # the second send could come after any idle stop, whose clock starts with the first record
    worker = Worker(engine, WorkerConfig(bootstrap=kafka_bootstrap, group=f"g{tag}", topics=topics, max_events=2,
                                         session_timeout_ms=6000, heartbeat_interval_ms=1000))
    thread = threading.Thread(target=worker.run, kwargs={"install_signals": False})
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not list_dead_letters(engine) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [r.reason for r in list_dead_letters(engine)] == ["unknown_category"]
        declare(engine, _with_extension())  # the README's order: `up`, then `declare`
        send_lines([orjson.dumps(transfer("ext-2", data_categories=[EXTENSION]))], bootstrap=kafka_bootstrap, topics=topics,
                   mode="structured", partitions=1)
        thread.join(90)
        assert not thread.is_alive()
    finally:  # a failure above must not leave the worker polling
        worker.stop()
        thread.join(30)
    assert worker.totals.model_dump() == {"ingested": 1, "duplicates": 0, "dead_lettered": 1}
