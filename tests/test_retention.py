"""Retention of the registry's own data (contract §6), on SQLite and PostgreSQL: what `retention
apply` removes equals a count over the test's own events, answers over the removed period stay
exact at whole hours (brute force over the same events), a sub-hour bound there exits 2,
`covered_since`, `too_old` dead letters, and month partitions dropped on PostgreSQL."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from registry.answers.questions import recipient_detail, recipients_of, subject
from registry.cli import app
from registry.exceptions import InputError
from registry.intake.deadletters import replay
from registry.intake.ingest import Ingestor
from registry.intake.retention import HourlyRetention, apply_retention
from registry.model.declarations import declare
from registry.model.manifest import Manifest, RegistryRetention
from registry.model.events import RawRecord
from registry.model.store import open_store
from registry.model.tables import monday
from registry.model.times import format_time

from .conftest import table_counts
from .helpers import record, ref, transfer

NOW = datetime.now(timezone.utc).replace(microsecond=0)
RECIPIENTS = {"google-analytics": ["user.device.cookie_id", "user.behavior.browsing_history"],
              "mailchimp": ["user.contact.email", "user.name"], "stripe": ["user.financial.credit_card", "user.name"]}
PURPOSE = {"google-analytics": "analytics.reporting", "mailchimp": "marketing.communications.email",
           "stripe": "essential.service.payment_processing"}
SUBJECTS = [ref(f"customer-{i}") for i in range(4)]


def _events(count: int, seed: int, days: int = 90) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    events = []
    for i in range(count):
        moment = NOW - timedelta(seconds=rng.randrange(days * 86400))
        recipient = rng.choice(sorted(RECIPIENTS))
        categories = rng.sample(RECIPIENTS[recipient], rng.randint(1, 2))
        data: dict[str, Any] = {"recipient": recipient, "data_categories": categories, "purpose": PURPOSE[recipient],
                                "legal_basis": "consent", "record_count": rng.randint(1, 9)}
        if rng.random() < 0.6:
            data["subject_refs"] = rng.sample(SUBJECTS, rng.randint(1, 2))
        source = rng.choice(["//services/web", "//services/shop"])
        events.append({**transfer(f"r{seed}-{i}", time=moment.isoformat().replace("+00:00", "Z"), source=source, **data),
                       "_time": moment})
    return events


def _ingest(engine: sa.Engine, events: list[dict[str, Any]]) -> None:
    # three "partitions" so that the aggregates hold several shards of one flow, as with workers
    records = []
    for i, e in enumerate(events):
        r = record({k: v for k, v in e.items() if k != "_time"})
        records.append(type(r)(value=r.value, headers=r.headers, topic="t", partition=i % 3, offset=i))
    Ingestor(engine).ingest(records, batch_size=97)


def _with_retention(manifest: Manifest, **periods: str) -> Manifest:
    return manifest.model_copy(update={"registry_retention": RegistryRetention(**periods)})


def _brute_recipients(events: list[dict[str, Any]], since: datetime | None, until: datetime | None) -> dict[str, int]:
    return dict(Counter(e["data"]["recipient"] for e in events
                        if (since is None or e["_time"] >= since) and (until is None or e["_time"] < until)))


def _brute_records(events: list[dict[str, Any]], recipient: str, since: datetime | None, until: datetime | None) -> dict[str, int]:
    out: Counter[str] = Counter()
    for e in events:
        if e["data"]["recipient"] == recipient and (since is None or e["_time"] >= since) and (until is None or e["_time"] < until):
            for c in set(e["data"]["data_categories"]):
                out[c] += e["data"]["record_count"]
    return dict(out)


def _answered_records(engine: sa.Engine, recipient: str, since: datetime | None, until: datetime | None) -> dict[str, int]:
    out: Counter[str] = Counter()
    for f in recipient_detail(engine, recipient, since, until).flows:
        out[f.category] += f.records
    return dict(out)


def test_apply_removes_exactly_the_old_rows_and_whole_hour_answers_stay_exact(db_url: str, manifest: Manifest) -> None:
    engine = open_store(db_url)
    declare(engine, manifest)
    events = _events(600, seed=3)
    _ingest(engine, events)
    declare(engine, _with_retention(manifest, events="30 days", subject_refs="60 days", dead_letters="10 days"))
    hour = timedelta(hours=1)
    events_horizon = (NOW - timedelta(days=30)).replace(minute=0, second=0)
    refs_day = (NOW - timedelta(days=60)).date()
    refs_horizon = datetime.combine(monday(refs_day), datetime.min.time(), tzinfo=timezone.utc)
    old = [e for e in events if e["_time"] < events_horizon]
    old_index_rows = {(monday(e["_time"].date()), s, e["data"]["recipient"], e["source"], e["data"]["purpose"],
                       ",".join(sorted(e["data"]["data_categories"])), i % 3)
                      for i, e in enumerate(events) for s in e["data"].get("subject_refs", ())
                      if e["_time"] < refs_horizon}
    before = table_counts(engine)

    dry = apply_retention(engine, now=NOW, dry_run=True)
    assert dry.model_dump() == {"events_removed": len(old), "subject_refs_removed": len(old_index_rows), "dead_letters_removed": 0,
                                "horizon": {"events": format_time(events_horizon), "subject_refs": format_time(refs_horizon),
                                            "dead_letters": format_time(NOW - timedelta(days=10))}}
    assert table_counts(engine) == before  # a dry run removes nothing

    windows: list[tuple[datetime | None, datetime | None]] = [
        (None, None), (events_horizon - 20 * 24 * hour, None), (events_horizon - 50 * 24 * hour, events_horizon + 5 * hour),
        (events_horizon - 7 * hour, events_horizon - 2 * hour), (None, events_horizon - 26 * hour)]
    answers_before = {w: {r.recipient: r.events for r in recipients_of(engine, "user", *w) if r.via is None} for w in windows}

    result = apply_retention(engine, now=NOW)
    assert result == dry
    assert table_counts(engine)["event"] == len(events) - len(old)
    for w in windows:  # whole hours over the purged period: the same answers, equal to brute force
        assert {r.recipient: r.events for r in recipients_of(engine, "user", *w) if r.via is None} == answers_before[w] == \
            _brute_recipients(events, *w), w
        for who in RECIPIENTS:
            assert _answered_records(engine, who, *w) == _brute_records(events, who, *w), (w, who)
    # a sub-hour bound after the horizon is still exact (its hour's events are kept)
    inside = events_horizon + 49 * hour + timedelta(minutes=17, seconds=3)
    assert {r.recipient: r.events for r in recipients_of(engine, "user", since=inside) if r.via is None} == \
        _brute_recipients(events, inside, None)
    # ... and one inside the purged period is refused, naming the bound
    for since, until in ((events_horizon - 3 * hour + timedelta(minutes=1), None), (None, events_horizon - timedelta(seconds=1))):
        with pytest.raises(InputError) as info:
            recipients_of(engine, "user", since=since, until=until)
        assert "retention" in str(info.value) and ("since" if since else "until") in str(info.value)

    for s in SUBJECTS:
        answer = subject(engine, s)
        assert answer.covered_since == format_time(refs_horizon)
        expected: Counter[tuple[str, str]] = Counter()
        for e in events:
            if s in e["data"].get("subject_refs", ()) and e["_time"] >= refs_horizon:
                expected[(e["data"]["recipient"], e["source"])] += 1
        assert {(t.recipient, t.source): t.events for t in answer.transfers} == dict(expected)

    again = apply_retention(engine, now=NOW)  # nothing left to remove
    assert (again.events_removed, again.subject_refs_removed, again.dead_letters_removed) == (0, 0, 0)


def test_covered_since_without_purge_is_the_first_transfer(engine: sa.Engine, manifest: Manifest) -> None:
    declare(engine, manifest)
    assert subject(engine, SUBJECTS[0]).covered_since is None
    events = _events(40, seed=8)
    _ingest(engine, events)
    assert subject(engine, SUBJECTS[0]).covered_since == format_time(min(e["_time"] for e in events))


def test_too_old_events_are_dead_letters_and_old_dead_letters_go(engine: sa.Engine, manifest: Manifest) -> None:
    declare(engine, _with_retention(manifest, events="30 days", dead_letters="10 days"))
    old, fresh = (transfer(i, time=(NOW - timedelta(days=d)).isoformat()) for i, d in (("old", 31), ("fresh", 1)))
    result = Ingestor(engine).ingest([record(old), record(fresh)])
    assert result.model_dump() == {"ingested": 1, "duplicates": 0, "dead_lettered": 1}
    with engine.connect() as conn:
        rows = conn.exec_driver_sql("SELECT reason, detail, payload FROM dead_letter").all()
    assert [r.reason for r in rows] == ["too_old"] and "retention" in rows[0].detail
    assert orjson.loads(rows[0].payload)["id"] == "old"  # kept whole: it can be replayed once retention is longer
    assert apply_retention(engine, now=NOW + timedelta(days=9)).dead_letters_removed == 0
    assert apply_retention(engine, now=NOW + timedelta(days=11)).dead_letters_removed == 1
    assert table_counts(engine)["dead_letter"] == 0


def test_a_removed_event_is_not_counted_again_after_the_period_is_lengthened(engine: sa.Engine, manifest: Manifest) -> None:
    """Review of issue 23 (d.py): the too_old check used only the current manifest's horizon, so
    an event retention had removed was ingested a second time once the period grew or
    ``registry_retention`` was removed."""
    declare(engine, manifest)
    old = (NOW - timedelta(days=60)).replace(minute=0, second=0)
    event = transfer("old-1", time=old.isoformat(), recipient="mailchimp", data_categories=["user.contact.email"],
                     purpose="marketing.communications.email")
    ingestor = Ingestor(engine)  # a long-running worker: its refresh must see the purge mark
    assert ingestor.ingest([RawRecord(value=orjson.dumps(event), partition=0)]).ingested == 1
    declare(engine, _with_retention(manifest, events="30 days"))
    assert apply_retention(engine).events_removed == 1
    assert ingestor.ingest([RawRecord(value=orjson.dumps(event), partition=1)]).model_dump() == {"ingested": 0, "duplicates": 0, "dead_lettered": 1}
    declare(engine, _with_retention(manifest, events="90 days"))
    assert ingestor.ingest([RawRecord(value=orjson.dumps(event), partition=1)]).dead_lettered == 1
    declare(engine, manifest)
    assert Ingestor(engine).ingest([RawRecord(value=orjson.dumps(event), partition=2)]).dead_lettered == 1
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT reason FROM dead_letter").scalars().all() == ["too_old"]
        conn.exec_driver_sql("UPDATE dead_letter SET reason = 'unknown_category'")  # as if refused for another reason
        conn.commit()
    assert replay(engine).model_dump() == {"replayed": 1, "ingested": 0, "still_dead": 1}
    counted = [r.events for r in recipients_of(engine, "user.contact", old, old + timedelta(hours=1)) if r.recipient == "mailchimp"]
    assert counted == [1]


def test_hourly_retention_runs_once_an_hour_and_never_raises(engine: sa.Engine, manifest: Manifest) -> None:
    declare(engine, _with_retention(manifest, events="30 days"))
    clock = [0.0]
    hourly = HourlyRetention(engine, clock=lambda: clock[0])
    assert hourly.maybe_apply() is not None
    clock[0] = 3599.0
    assert hourly.maybe_apply() is None
    clock[0] = 3600.0
    assert hourly.maybe_apply() is not None
    engine.dispose()
    broken = HourlyRetention(sa.create_engine("sqlite:////nonexistent/dir/x.db"), clock=lambda: 0.0)
    assert broken.maybe_apply() is None  # logged, not raised: retention never stops a worker


def test_postgres_drops_whole_month_partitions(postgres_url: str, manifest: Manifest) -> None:
    from registry.model.partitions import event_partitions

    engine = open_store(postgres_url)
    declare(engine, manifest)
    times = ["2026-01-10T08:00:00Z", "2026-01-31T23:59:59.999Z", "2026-02-10T12:00:00Z", "2026-03-05T09:59:59Z",
             "2026-03-05T10:00:00Z", "2026-03-20T12:00:00Z"]
    Ingestor(engine).ingest([record(transfer(f"m{i}", time=t)) for i, t in enumerate(times)])
    with engine.connect() as conn:
        assert sorted(event_partitions(conn).values()) == ["event_p202601", "event_p202602", "event_p202603"]
    declare(engine, _with_retention(manifest, events="10 days"))
    result = apply_retention(engine, now=datetime(2026, 3, 15, 10, 30, tzinfo=timezone.utc))
    assert result.horizon.events == "2026-03-05T10:00:00Z" and result.events_removed == 4
    with engine.connect() as conn:
        assert list(event_partitions(conn).values()) == ["event_p202603"]
        assert sorted(conn.exec_driver_sql("SELECT event_id FROM event").scalars()) == ["m4", "m5"]
    # whole hours over the dropped months are still answered from the aggregates
    assert [(r.recipient, r.events) for r in recipients_of(engine, "user", since=datetime(2026, 1, 1, tzinfo=timezone.utc))] == \
        [("google-analytics", 6)]
    # a later event of a dropped month stays refused once retention is removed: its original may be gone
    declare(engine, manifest)
    assert Ingestor(engine).ingest([record(transfer("late", time="2026-01-12T00:00:00Z"))]).dead_lettered == 1


def test_the_hourly_hook_gives_up_a_partition_a_reader_holds_and_drops_it_next_run(postgres_url: str, manifest: Manifest) -> None:
    """Review of issue 23 (f.py): DROP TABLE of a month partition waited without limit behind a
    long reader, so the worker's hourly hook neither polled nor committed."""
    import time
    import threading

    from registry.model.partitions import event_partitions, month_of, partition_name

    engine = open_store(postgres_url)
    declare(engine, manifest)
    old = NOW - timedelta(days=70)
    assert Ingestor(engine).ingest([record(transfer("f-old", time=old.isoformat()))]).ingested == 1
    declare(engine, _with_retention(manifest, events="30 days"))
    name = partition_name(month_of(old))
    reader = engine.connect()
    reader.begin()
    reader.exec_driver_sql("SELECT count(*) FROM event").scalar()  # a long report or pg_dump: ACCESS SHARE on event
    results: list[Any] = []
    started = time.monotonic()
    hook = threading.Thread(target=lambda: results.append(HourlyRetention(engine, clock=lambda: 0.0).maybe_apply()), daemon=True)
    hook.start()
    hook.join(40)
    elapsed = time.monotonic() - started
    reader.rollback()
    reader.close()
    # ~2 s unloaded (its lock_timeout); 30 s still shows the wait is bounded on a starved machine
    assert not hook.is_alive() and elapsed < 30, f"the hook was still waiting after {elapsed:.1f} s"
    assert results[0] is not None and results[0].events_removed == 1  # the rows went by DELETE; the drop waits
    with engine.connect() as conn:
        assert name in event_partitions(conn).values()
    assert apply_retention(engine).events_removed == 0  # the next run, the reader gone, drops the empty month
    with engine.connect() as conn:
        assert name not in event_partitions(conn).values()


def test_cli_retention_apply_and_a_sub_hour_bound_exit_2(db_url: str, tmp_path: Path, manifest: Manifest) -> None:
    engine = open_store(db_url)
    declare(engine, manifest)
    _ingest(engine, _events(50, seed=5))
    declare(engine, _with_retention(manifest, events="30 days"))
    runner = CliRunner()
    result = runner.invoke(app, ["--db", db_url, "--json", "retention", "apply", "--dry-run"])
    assert result.exit_code == 0, result.output
    shape = json.loads(result.stdout)
    assert set(shape) == {"events_removed", "subject_refs_removed", "dead_letters_removed", "horizon"}
    assert set(shape["horizon"]) == {"events", "subject_refs", "dead_letters"} and shape["horizon"]["subject_refs"] is None
    assert runner.invoke(app, ["--db", db_url, "--json", "retention", "apply"]).exit_code == 0
    since = (NOW - timedelta(days=40)).replace(minute=30).isoformat()
    bad = runner.invoke(app, ["--db", db_url, "recipients", "--category", "user", "--since", since])
    assert bad.exit_code == 2 and "retention" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    good = runner.invoke(app, ["--db", db_url, "--json", "recipients", "--category", "user",
                               "--since", (NOW - timedelta(days=40)).replace(minute=0, second=0).isoformat()])
    assert good.exit_code == 0, good.output


@pytest.mark.empty_store
def test_migration_0007_keeps_a_store_with_data(db_url: str, manifest: Manifest) -> None:
    """A store at 0004 holding events and aggregates: after the upgrade every row is there (shard 0),
    the answers are unchanged, and on PostgreSQL the events sit in their month partitions."""
    from .helpers import store_at

    old = store_at(db_url, "0004")
    events = _events(30, seed=11)
    rows = [{"s": e["source"], "i": e["id"], "t": e["_time"], "r": e["data"]["recipient"],
             "b": orjson.dumps({k: v for k, v in e.items() if k != "_time"}).decode()} for e in events]
    with old.begin() as conn:
        conn.execute(sa.text("INSERT INTO event (source, event_id, type, time, recipient, payload_hash, body) "
                             "VALUES (:s, :i, 'registry.transfer.v1', :t, :r, 'h', :b)"), rows)
        conn.execute(sa.text("INSERT INTO flow_day (day, source, recipient, categories, purpose, legal_basis, activity, country, "
                             "mechanism, events, records, first_seen, last_seen) VALUES (:d, 's', 'stripe', 'user.name', "
                             "'marketing', 'consent', '', '', '', 7, 9, :t, :t)"), {"d": NOW.date(), "t": NOW})
    old.dispose()
    engine = open_store(db_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM event").scalar_one() == 30
        assert conn.exec_driver_sql("SELECT shard, events FROM flow_day").all() == [(0, 7)]
        if engine.dialect.name == "postgresql":
            from registry.model.partitions import event_partitions, month_of

            assert set(event_partitions(conn)) == {month_of(e["_time"]) for e in events}
    declare(engine, manifest)
    again = Ingestor(engine).ingest([record({k: v for k, v in e.items() if k != "_time"}) for e in events[:5]])
    # the copied events still deduplicate (0005 recomputed their hashes from the stored bodies)
    assert (again.ingested, again.duplicates, again.dead_lettered) == (0, 5, 0)


def test_manifest_refuses_events_kept_longer_than_subject_refs(tmp_path: Path) -> None:
    from registry.exceptions import ManifestError
    from registry.model.manifest import parse_manifest

    from .conftest import EXAMPLE_MANIFEST

    text = Path(EXAMPLE_MANIFEST).read_text()
    assert parse_manifest(text + '\nregistry_retention: {events: "400 days", subject_refs: "2 years", dead_letters: "90 days"}\n')
    for bad, path in (('{events: "3 years", subject_refs: "2 years"}', "registry_retention.events"),
                      ('{subject_refs: "2 years"}', "registry_retention.events"),
                      ('{events: "400 fortnights"}', "registry_retention.events")):
        with pytest.raises(ManifestError) as info:
            parse_manifest(text + f"\nregistry_retention: {bad}\n")
        assert info.value.path == path


def test_subject_as_of_over_sharded_index_rows_equals_brute_force(engine: sa.Engine, manifest: Manifest) -> None:
    """Index rows of one key in several shards (Kafka partitions): a week cut by ``as_of`` is
    recounted whole, every shard of it, so nothing counts twice; inside purged events exit 2."""
    declare(engine, manifest, NOW - timedelta(days=400))  # in force before every event (--as-of needs a version)
    events = _events(300, seed=21, days=40)
    _ingest(engine, events)
    rng = random.Random(4)
    moments = [NOW - timedelta(seconds=rng.randrange(40 * 86400)) for _ in range(12)]
    for s in SUBJECTS:
        for at in moments:
            expected: Counter[tuple[str, str]] = Counter()
            for e in events:
                if s in e["data"].get("subject_refs", ()) and e["_time"] < at:
                    expected[(e["data"]["recipient"], e["source"])] += 1
            assert {(t.recipient, t.source): t.events for t in subject(engine, s, as_of=at).transfers} == dict(expected), (s, at)
    declare(engine, _with_retention(manifest, events="20 days", subject_refs="30 days"))
    apply_retention(engine, now=NOW)
    purged = NOW - timedelta(days=25)
    cut = [at for at in moments if at < purged]
    assert cut
    refused = 0
    for s in SUBJECTS:
        for at in cut:
            try:
                subject(engine, s, as_of=at)
            except InputError as exc:
                assert "--as-of" in str(exc) and "retention" in str(exc)
                refused += 1
    assert refused  # a week cut inside the purged period needs events that are gone
    monday_start = datetime.combine(monday((NOW - timedelta(days=22)).date()), datetime.min.time(), tzinfo=timezone.utc)
    for s in SUBJECTS:  # a Monday 00:00 cuts no week: answered from the index alone
        subject(engine, s, as_of=monday_start)


def test_subject_as_of_inside_the_purged_subject_index_exits_2(db_url: str, manifest: Manifest) -> None:
    """Review of issue 23: ``subject --as-of T`` with T before ``covered_since`` answered empty
    transfers (every index row before T was removed), which reads as "no transfers then"."""
    engine = open_store(db_url)
    declare(engine, manifest, NOW - timedelta(days=400))  # in force before every event (--as-of needs a version)
    _ingest(engine, _events(120, seed=22, days=60))
    declare(engine, _with_retention(manifest, events="20 days", subject_refs="30 days"))
    apply_retention(engine, now=NOW)
    covered = datetime.fromisoformat(subject(engine, SUBJECTS[0]).covered_since or "")
    runner = CliRunner()
    for at in (covered - timedelta(days=7), covered):  # a Monday 00:00 too: nothing before it is indexed
        bad = runner.invoke(app, ["--db", db_url, "subject", SUBJECTS[0], "--as-of", format_time(at)])
        assert bad.exit_code == 2 and "subject refs retention" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, bad.output
    good = runner.invoke(app, ["--db", db_url, "--json", "subject", SUBJECTS[0], "--as-of", format_time(covered + timedelta(days=7))])
    assert good.exit_code == 0, good.output


def test_a_dry_run_against_a_missing_store_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "registy.db"
    result = CliRunner().invoke(app, ["--db", f"sqlite:///{path}", "retention", "apply", "--dry-run"])
    assert result.exit_code == 2 and "no store" in result.stderr and not path.exists()


def test_the_worker_applies_retention_when_it_starts(tmp_path: Path, kafka_bootstrap: str, manifest: Manifest) -> None:
    """`consume` runs the hourly retention hook: its first loop removes what is past the horizon."""
    import uuid

    from consumers.worker import Worker, WorkerConfig
    from registry.stream.kafka import Topics

    engine = open_store(f"sqlite:///{tmp_path / 'registry.db'}")
    declare(engine, manifest)
    Ingestor(engine).ingest([record(transfer("old", time=(NOW - timedelta(days=40)).isoformat())),
                             record(transfer("new", time=(NOW - timedelta(days=1)).isoformat()))])
    declare(engine, _with_retention(manifest, events="30 days"))
    tag = uuid.uuid4().hex[:8]
    topics = Topics(f"r{tag}.transfers", f"r{tag}.disclosures", f"r{tag}.dead-letter")
    Worker(engine, WorkerConfig(bootstrap=kafka_bootstrap, group=f"g{tag}", topics=topics, stop_when_idle=2,
                                session_timeout_ms=6000, heartbeat_interval_ms=1000)).run(install_signals=False)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT event_id FROM event").scalars().all() == ["new"]
