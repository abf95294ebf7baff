"""The ingest path against a real store, on SQLite and on PostgreSQL (same assertions)."""

from __future__ import annotations

import orjson
import pytest
import sqlalchemy as sa
import yaml

from examples.blausen.generate import generate
from registry.answers.questions import subject as subject_of
from registry.intake.deadletters import list_dead_letters, replay
from registry.intake.ingest import Ingestor
from registry.model.declarations import current_manifest, declare
from registry.model.events import RawRecord
from registry.model.manifest import parse_manifest

from .conftest import EXAMPLE_MANIFEST, all_text, table_counts
from .helpers import record, ref, transfer


def _stream(events: int, seed: int = 3) -> tuple[list[RawRecord], dict[str, int], list[RawRecord]]:
    """(all records, dead-letter count by reason, the valid records) as the generator wrote them."""
    records, dead, valid = [], {}, []
    for line, reason in generate(events, seed, poison_per_reason=2):
        records.append(RawRecord(value=line))
        if reason:
            dead[reason] = dead.get(reason, 0) + 1
        else:
            valid.append(records[-1])
    return records, dead, valid


def test_declare_stores_versions(engine: sa.Engine, manifest) -> None:  # type: ignore[no-untyped-def]
    assert current_manifest(engine) is None
    assert declare(engine, manifest).version == 1
    second = declare(engine, manifest)
    assert (second.version, second.recipients, second.activities) == (2, 18, 13)
    assert current_manifest(engine) == manifest
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM recipient WHERE version = 2").scalar_one() == 18


def test_generated_stream_counts_match_the_generator(declared: sa.Engine) -> None:
    records, dead, valid = _stream(3000)
    result = Ingestor(declared).ingest(records, batch_size=700)
    assert result.dead_lettered == sum(dead.values()) == 20
    assert result.ingested + result.dead_lettered == len(records) == 3000
    by_reason: dict[str, int] = {}
    for row in list_dead_letters(declared):
        by_reason[row.reason] = by_reason.get(row.reason, 0) + 1
    assert by_reason == dead
    counts = table_counts(declared)
    assert counts["event"] == result.ingested
    with declared.connect() as conn:
        # every valid transfer lands in exactly one flow_day row (its signature), however many categories it has
        expected = sum(1 for r in valid if orjson.loads(r.value)["type"] == "registry.transfer.v1")
        assert conn.exec_driver_sql("SELECT SUM(events) FROM flow_day").scalar_one() == expected

    again = Ingestor(declared).ingest(records, batch_size=1000)
    assert again.model_dump() == {"ingested": 0, "duplicates": result.ingested, "dead_lettered": 20}
    assert table_counts(declared) == counts


def test_aggregates_are_exact(declared: sa.Engine) -> None:
    a, b = ref("customer-1"), ref("customer-2")
    events = [
        transfer("1", "2026-03-01T10:00:00Z", data_categories=["user.device.cookie_id", "user.device.ip_address"], record_count=5, subject_refs=[a]),
        transfer("2", "2026-03-01T23:59:59Z", data_categories=["user.device.cookie_id"], record_count=2, subject_refs=[a, b]),
        transfer("3", "2026-03-02T00:00:00Z", data_categories=["user.device.cookie_id"]),
    ]
    Ingestor(declared).ingest([record(e) for e in events])
    with declared.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT day, categories, events, records FROM flow_day ORDER BY day, categories").all()
        assert [(str(r[0]), r[1], r[2], r[3]) for r in rows] == [
            ("2026-03-01", "user.device.cookie_id", 1, 2),
            ("2026-03-01", "user.device.cookie_id,user.device.ip_address", 1, 5),
            ("2026-03-02", "user.device.cookie_id", 1, 1),
        ]
        subject = conn.exec_driver_sql(
            f"SELECT categories, events FROM subject_flow WHERE subject_ref = '{a}' ORDER BY categories").all()
        assert [tuple(r) for r in subject] == [("user.device.cookie_id", 1), ("user.device.cookie_id,user.device.ip_address", 1)]
    answer = subject_of(declared, a).transfers[0]
    assert (answer.categories, answer.events) == (["user.device.cookie_id", "user.device.ip_address"], 2)
    assert (answer.first_seen, answer.last_seen) == ("2026-03-01T10:00:00Z", "2026-03-01T23:59:59Z")


def test_same_key_with_another_payload_is_a_conflicting_duplicate(declared: sa.Engine) -> None:
    ingestor = Ingestor(declared)
    assert ingestor.ingest([record(transfer("k1"))]).ingested == 1
    result = ingestor.ingest([record(transfer("k1", record_count=9)), record(transfer("k1"))])
    assert result.model_dump() == {"ingested": 0, "duplicates": 1, "dead_lettered": 1}
    assert [r.reason for r in list_dead_letters(declared)] == ["conflicting_duplicate"]
    # the same id from another source is another event
    assert ingestor.ingest([record(transfer("k1", source="//services/api"))]).ingested == 1


def test_raw_identifiers_reach_only_a_redacted_dead_letter(declared: sa.Engine) -> None:
    email, phone = "jane.doe@example.org", "+1 713 555 0199"
    events = [transfer("r1", subject_refs=[email]), transfer("r2", subject_refs=[phone]), transfer("ok", subject_refs=[ref("c")])]
    result = Ingestor(declared).ingest([record(e) for e in events])
    assert result.model_dump() == {"ingested": 1, "duplicates": 0, "dead_lettered": 2}
    rows = list_dead_letters(declared)
    assert [r.reason for r in rows] == ["raw_identifier", "raw_identifier"]
    stored = all_text(declared)
    assert email not in stored and "jane.doe" not in stored and "555 0199" not in stored
    assert "[redacted:subject_id]" in rows[0].payload


def test_replay_after_the_manifest_adds_an_extension(declared: sa.Engine, manifest) -> None:  # type: ignore[no-untyped-def]
    event = transfer("x1", data_categories=["user.workplace.grant_number"])
    assert Ingestor(declared).ingest([record(event), record(b"{oops")]).dead_lettered == 2
    assert replay(declared).model_dump() == {"replayed": 2, "ingested": 0, "still_dead": 2}

    document = yaml.safe_load(EXAMPLE_MANIFEST.read_text())
    document["taxonomy"]["data_categories"].append({"key": "user.workplace.grant_number", "parent": "user.workplace"})
    declare(declared, parse_manifest(yaml.safe_dump(document)))
    assert replay(declared).model_dump() == {"replayed": 2, "ingested": 1, "still_dead": 1}
    assert [r.reason for r in list_dead_letters(declared)] == ["invalid_json"]
    assert len(list_dead_letters(declared, include_replayed=True)) == 2
    assert table_counts(declared)["event"] == 1
    assert replay(declared).model_dump() == {"replayed": 1, "ingested": 0, "still_dead": 1}


def test_disclosure_events_are_appended_to_the_ledger(declared: sa.Engine) -> None:
    from registry.ledger.chain import verify

    snapshot = {"request_id": "SUB-1", "authority": "District Court of Harris County", "authority_country": "US",
                "instrument": "subpoena", "received_at": "2026-02-01T09:00:00Z", "outcome": "pending", "notice": "pending"}
    events = [{"specversion": "1.0", "id": f"d{i}", "source": "//services/legal", "type": "registry.disclosure.v1",
               "time": f"2026-02-0{i + 1}T09:00:00Z", "data": dict(snapshot, outcome=outcome)}
              for i, outcome in enumerate(["pending", "pending", "produced"])]
    events[2]["data"]["data_categories"] = ["user.contact.email"]
    result = Ingestor(declared).ingest([record(e) for e in events])
    assert result.ingested == 3
    assert table_counts(declared)["ledger_entry"] == 2  # the identical second snapshot is no new version
    assert verify(declared).model_dump(include={"ok", "entries", "first_bad"}) == {"ok": True, "entries": 2, "first_bad": None}


def test_migrations_match_the_models(engine: sa.Engine) -> None:
    """Alembic's head builds exactly the tables the models describe (no pending autogenerate diff)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from registry.model.tables import metadata

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


@pytest.mark.parametrize("moment", ["2026-01-01T00:00:00Z", "2026-12-31T23:59:59.999999Z", "2026-03-01T10:02:03.52+02:00"])
def test_bulk_times_are_written_as_sqlalchemy_writes_them(moment: str) -> None:
    """Rows written by the bulk path must read back through the models: same text as strftime."""
    from registry.intake.writes import Bulk
    from registry.model.times import parse_time

    value = parse_time(moment)
    assert Bulk("sqlite").time(value) == value.strftime("%Y-%m-%d %H:%M:%S.%f")


def test_the_head_read_from_the_files_is_alembics_head() -> None:
    # open_store skips Alembic when the store is at this revision: it must be Alembic's own head
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from registry.model.store import _MIGRATIONS, head_revision

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    assert head_revision() == ScriptDirectory.from_config(config).get_current_head()
