"""The leak corpus (contract §1): a distinct raw identifier planted in each place an event can
carry one. Every such event is dead-lettered as ``raw_identifier``, and no identifier is found
anywhere the registry writes: the database files' bytes (SQLite .db and -wal; a pg_dump), the
CLI's output and logs, the HTTP answers, the dead-letter list."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa

from registry.model.store import open_store

from .conftest import EXAMPLE_MANIFEST, ROOT
from .helpers import ref, transfer


def _disclosure(event_id: str, **data: Any) -> dict[str, Any]:
    body = {"request_id": "SUB-7", "authority": "District Court", "authority_country": "US", "instrument": "subpoena",
            "received_at": "2026-02-01T09:00:00Z", "outcome": "pending", "notice": "pending"}
    body.update(data)
    return {"specversion": "1.0", "id": event_id, "source": "//services/legal", "type": "registry.disclosure.v1",
            "time": "2026-02-01T09:00:00Z", "data": body}


def _with(event: dict[str, Any], **envelope: Any) -> dict[str, Any]:
    return {**copy.deepcopy(event), **envelope}


def corpus() -> list[tuple[str, dict[str, Any]]]:
    """(identifier, event): each identifier distinct, each in another place."""
    t = transfer
    items = [
        ("src.alice@example.com", _with(t("leak-1"), source="//services/src.alice@example.com")),
        ("id.bob@example.org", _with(t("ignored"), id="id.bob@example.org")),
        ("subj.carol@example.net", _with(t("leak-3"), subject="subj.carol@example.net")),
        ("198.51.100.44", _with(t("leak-4"), clientip="198.51.100.44")),
        ("key.dave@example.com", _with(t("leak-5"), **{"key.dave@example.com": "x"})),
        ("datakey.erin@example.com", t("leak-6", **{"datakey.erin@example.com": 1})),
        ("type.frank@example.com", _with(t("leak-7"), type="registry.transfer.v1.type.frank@example.com")),
        ("2001:db8:85a3::8a2e:370:7334", _disclosure("leak-8", authority="Request relayed from 2001:db8:85a3::8a2e:370:7334 by email")),
        ("reviewer.grace@example.com", _disclosure("leak-9", reviewed_by="reviewer.grace@example.com")),
        ("+44 20 7946 0958", _disclosure("leak-10", notice_reason="call +44 20 7946 0958 first")),
        ("203.0.113.77", _disclosure("leak-11", legal_reference="case from 203.0.113.77")),
        ("refs.heidi@example.com", t("leak-12", subject_refs=[ref("ok"), "refs.heidi@example.com"])),
        ("+1 713 555 0142", t("leak-13", subject_refs=["+1 713 555 0142"])),
        ("act.ivan@example.com", t("leak-14", activity="act.ivan@example.com")),
        ("nested.judy@example.com", _with(t("leak-15"), ext={"deep": ["nested.judy@example.com"]})),
        ("fe80::1ff:fe23:4567:890a", t("leak-16", recipient="fe80::1ff:fe23:4567:890a")),
        # a raw identifier beside another fault is still a raw_identifier dead letter
        ("both.mallory@example.com", t("leak-17", data_categories=["user.telepathy"], activity="both.mallory@example.com")),
    ]
    assert len({i for i, _ in items}) == len(items)
    return items


GOOD = [transfer(f"good-{i}", subject_refs=[ref(f"g{i}")]) for i in range(3)]
# not JSON at all, or oversized: their own reasons, but nothing of them may be kept either
BROKEN = [("broken.oscar@example.com", b'{"id": "broken.oscar@example.com", '),
          ("big.peggy@example.com", orjson.dumps({**transfer("big"), "pad": "big.peggy@example.com " + "x" * (1024 * 1024)}))]


def _identifiers() -> list[str]:
    return [i for i, _ in corpus()] + [i for i, _ in BROKEN]


def _cli(db: str, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "REGISTRY_SUBJECT_KEY": "test-subject-key"}
    return subprocess.run([sys.executable, "-m", "registry", "--db", db, *args], cwd=ROOT, input=stdin,
                          capture_output=True, env=env, timeout=120)


def _database_bytes(db_url: str, tmp_path: Path) -> bytes:
    if db_url.startswith("sqlite"):
        path = Path(db_url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    url = sa.make_url(db_url)
    dump = subprocess.run(["pg_dump", "-h", url.host or "127.0.0.1", "-p", str(url.port or 5432), "-U", url.username or "postgres",
                           url.database or ""], capture_output=True, check=True, timeout=120)
    return dump.stdout


def _assert_clean(blob: bytes, where: str) -> None:
    for identifier in _identifiers():
        assert identifier.encode() not in blob, f"{identifier} found in {where}"
    for fragment in (b"alice@", b"bob@", b"carol@", b"7946 0958", b"555 0142", b"8a2e:370", b"fe23:4567"):
        assert fragment not in blob, f"{fragment!r} found in {where}"


@pytest.mark.slow
def test_every_planted_identifier_is_dead_lettered_and_never_written(db_url: str, tmp_path: Path) -> None:
    assert _cli(db_url, "declare", str(EXAMPLE_MANIFEST)).returncode == 0
    lines = [orjson.dumps(e) for _, e in corpus()] + [orjson.dumps(e) for e in GOOD] + [raw for _, raw in BROKEN]
    run = _cli(db_url, "--json", "ingest", "-", stdin=b"\n".join(lines) + b"\n")
    assert run.returncode == 0, run.stderr
    assert orjson.loads(run.stdout) == {"ingested": 3, "duplicates": 0, "dead_lettered": len(corpus()) + 2}
    listed = _cli(db_url, "--json", "dead-letters", "list")
    rows = orjson.loads(listed.stdout)
    assert sorted(r["reason"] for r in rows) == sorted(["raw_identifier"] * len(corpus()) + ["invalid_json", "too_large"])
    # a disclosure logged by hand with an identifier is refused whole, naming the field only
    logged = _cli(db_url, "--json", "disclosures", "log", "-",
                  stdin=orjson.dumps({**_disclosure("x")["data"], "reviewed_by": "reviewer.grace@example.com"}))
    assert logged.returncode == 2 and b"reviewed_by" in logged.stderr
    replayed = _cli(db_url, "--json", "dead-letters", "replay")
    assert orjson.loads(replayed.stdout)["ingested"] == 0  # masked copies are never replayed into events
    open_store.cache_clear()
    for name, blob in [("ingest output", run.stdout + run.stderr), ("dead-letters list", listed.stdout + listed.stderr),
                       ("disclosures log", logged.stdout + logged.stderr), ("replay", replayed.stdout + replayed.stderr),
                       ("the database", _database_bytes(db_url, tmp_path))]:
        _assert_clean(blob, name)
    assert b"good-1" in _database_bytes(db_url, tmp_path)  # the test can see what is stored


def test_the_http_path_refuses_and_keeps_nothing(db_url: str, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from registry.model.declarations import declare
    from registry.model.manifest import load_manifest
    from registry.web import create_app
    from registry.web.tokens import create_token

    engine = open_store(db_url)
    declare(engine, load_manifest(EXAMPLE_MANIFEST))
    token = create_token(engine, "service", "leaks").token
    with TestClient(create_app(db_url)) as client:
        answer = client.post("/api/events", content=orjson.dumps([e for _, e in corpus()] + GOOD),
                             headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"ingested": 3, "duplicates": 0, "dead_lettered": len(corpus())}
        listed = client.get("/api/dead-letters", headers={"Authorization": f"Bearer {token}"})
    open_store.cache_clear()
    _assert_clean(answer.content + listed.content, "HTTP answers")
    _assert_clean(_database_bytes(db_url, tmp_path), "the database")


@pytest.mark.slow
def test_the_kafka_path_refuses_and_keeps_nothing(tmp_path: Path, kafka_bootstrap: str) -> None:
    """Structured and binary records (identifiers in ce_ headers, an extension header and a plain
    header): the worker's log lines, its totals, the database and the dead-letter topic's
    ``dlq_detail`` hold none of them (the dead-letter record's value is the original, §2)."""
    import uuid

    from kafka import KafkaProducer

    from registry.stream.kafka import Topics, send_lines

    from .test_worker_faults import _forwarded

    tag = uuid.uuid4().hex[:8]
    topics = Topics(f"l{tag}.transfers", f"l{tag}.disclosures", f"l{tag}.dead-letter")
    db = f"sqlite:///{tmp_path / 'registry.db'}"
    assert _cli(db, "declare", str(EXAMPLE_MANIFEST)).returncode == 0
    send_lines([orjson.dumps(e) for _, e in corpus()] + [orjson.dumps(e) for e in GOOD], bootstrap=kafka_bootstrap,
               topics=topics, mode="structured", partitions=1)
    binary = [("ce_source", b"//services/hdr.trent@example.com"), ("ce_clientip", b"192.0.2.55"),
              ("x-forwarded-for", b"2001:db8::55")]
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for i, header in enumerate(binary):
        headers = dict([("ce_specversion", b"1.0"), ("ce_id", f"bin-{i}".encode()), ("ce_source", b"//services/web"),
                        ("ce_type", b"registry.transfer.v1"), ("ce_time", b"2026-03-01T10:00:00Z"),
                        ("content-type", b"application/json")])
        headers[header[0]] = header[1]
        producer.send(topics.transfers, value=orjson.dumps(transfer("x")["data"]), headers=list(headers.items()))
    producer.flush()
    producer.close()
    import subprocess as sp

    run = sp.run([sys.executable, "-m", "registry", "--db", db, "--json", "consume", "--group", f"g{tag}",
                  "--bootstrap-servers", kafka_bootstrap, "--transfers-topic", topics.transfers,
                  "--disclosures-topic", topics.disclosures, "--dead-letter-topic", topics.dead_letter,
                  "--session-timeout-ms", "6000", "--heartbeat-interval-ms", "1000", "--stop-when-idle", "4"],
                 cwd=ROOT, capture_output=True, timeout=180, env={**os.environ, "REGISTRY_SUBJECT_KEY": "test-subject-key"})
    assert run.returncode == 0, run.stderr[-2000:]
    assert orjson.loads(run.stdout) == {"ingested": 3, "duplicates": 0, "dead_lettered": len(corpus()) + len(binary)}
    details = b"".join(dict(r.headers).get("dlq_detail", b"") for r in _forwarded(kafka_bootstrap, topics.dead_letter))
    assert details.count(b"raw identifier") == len(corpus()) + len(binary)
    open_store.cache_clear()
    for name, blob in [("worker output and logs", run.stdout + run.stderr), ("dlq_detail headers", details),
                       ("the database", _database_bytes(db, tmp_path))]:
        _assert_clean(blob, name)
        for _, value in binary:
            assert value not in blob and b"trent@" not in blob, name
