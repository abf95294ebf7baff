"""Issue 21 on disclosures: a snapshot typed by a person is checked all at once, in plain words,
with dates that make sense (contract §2); the ledger answers with the times inside its signed
entries, never the column beside them, and orders snapshots by instant (contract §6)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml
from typer.testing import CliRunner

from registry.answers.questions import subject
from registry.cli import app
from registry.ledger.chain import append_snapshots, verify
from registry.ledger.disclosures import list_disclosures

from .helpers import ref

runner = CliRunner()
GOOD = {"request_id": "REQ-9", "authority": "District Court of Harris County", "authority_country": "US",
        "instrument": "court_order", "received_at": "2026-03-10T09:00:00Z", "outcome": "pending", "notice": "pending"}


def log(tmp_path: Path, text: str) -> tuple[int, str, str]:
    path = tmp_path / "snapshot.yaml"
    path.write_text(text)
    result = runner.invoke(app, ["--db", str(tmp_path / "registry.db"), "disclosures", "log", str(path)])
    return result.exit_code, result.stdout, result.stderr


FOUR_MISTAKES = """\
request_id: REQ-9
authority: District Court of Harris County
authority_country: Ireland
instrument: court order
received_at: 2026-03-10T09:00:00Z
disclosed_at: 2026-03-01T09:00:00Z
outcome: produced
notice: pending
"""


def test_every_mistake_is_named_at_once_in_document_order_and_plain_words(tmp_path: Path) -> None:
    code, out, err = log(tmp_path, FOUR_MISTAKES)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert err.strip() == (
        "error: authority_country: use a two-letter country code such as IE or US; "
        "instrument: use one of: subpoena, court_order, search_warrant, emergency_request, preservation_request, other_legal_obligation, "
        "eu_production_order, eu_preservation_order; "
        "disclosed_at: is before received_at (2026-03-10T09:00:00Z): a request cannot be answered before it was received; "
        "data_categories: is required when outcome is produced")
    assert not list(tmp_path.glob("*.db")) or _entries(tmp_path) == 0  # nothing stored


def _entries(tmp_path: Path) -> int:
    with sa.create_engine(f"sqlite:///{tmp_path / 'registry.db'}").connect() as conn:
        return int(conn.exec_driver_sql("SELECT COUNT(*) FROM ledger_entry").scalar_one())


def test_a_conditional_field_is_asked_for_only_once_its_condition_holds(tmp_path: Path) -> None:
    # notice misspelt: its value is the problem, not a notice_due it may or may not need
    code, _, err = log(tmp_path, yaml.safe_dump({**GOOD, "notice": "delayd"}))
    assert err.strip() == "error: notice: use one of: pending, given, delayed, prohibited, not_given"
    code, _, err = log(tmp_path, yaml.safe_dump({**GOOD, "notice": "delayed"}))
    assert code == 2 and err.strip() == "error: notice_due: is required when notice is delayed"


@pytest.mark.parametrize("changes, message", [
    ({"notice": "delayed", "notice_due": "2026-03-01"},
     "notice_due: is before the day the request was received (2026-03-10): notice cannot fall due before the request arrived"),
    ({"notice": "delayed", "notice_due": "2026-02-30"}, "notice_due: is not a date on the calendar; give one such as 2026-06-30"),
    ({"received_at": "2026-02-30T09:00:00Z"}, "received_at: is not a date on the calendar; give a date and time"),
    ({"outcome": "produced", "data_categories": ["user.contact.emial"]},
     "data_categories[0]: 'user.contact.emial' is not a data category of the taxonomy (did you mean user.contact.email"),
    ({"recieved_by": "Lena"}, "recieved_by: is not a field of a disclosure (did you mean reviewed_by?)"),
    ({"authority_country": "NO"}, "authority_country: use a two-letter country code such as IE or US (write Norway as 'NO', in quotes"),
])
def test_dates_and_keys_that_make_no_sense_are_refused(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    # written as YAML a person types: unquoted dates (2026-02-30 once made the YAML loader raise)
    text = "\n".join(f"{k}: {v}" if not isinstance(v, list) else f"{k}: [{', '.join(v)}]" for k, v in {**GOOD, **changes}.items())
    code, out, err = log(tmp_path, text)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.strip().startswith(f"error: {message}")


def test_a_sane_snapshot_with_unquoted_dates_is_logged(tmp_path: Path) -> None:
    text = "\n".join(f"{k}: {v}" for k, v in {**GOOD, "outcome": "no_data", "disclosed_at": "2026-03-12T10:00:00Z",
                                              "notice": "delayed", "notice_due": "2026-06-30"}.items())
    code, out, err = log(tmp_path, text)
    assert code == 0, err
    assert _entries(tmp_path) == 1


def test_the_api_lists_every_problem_with_its_field(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from registry.model.store import open_store
    from registry.web import create_app
    from registry.web.tokens import create_token

    db = f"sqlite:///{tmp_path / 'api.db'}"
    token = create_token(open_store(db), "legal").token
    body = {**GOOD, "authority_country": "Ireland", "outcome": "produced", "disclosed_at": "2026-03-01T09:00:00Z"}
    answer = TestClient(create_app(db)).post("/api/disclosures", json=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 422
    assert [d["loc"] for d in answer.json()["detail"]] == [["body", "authority_country"], ["body", "disclosed_at"],
                                                          ["body", "data_categories"]]


# -- the ledger's times ---------------------------------------------------------------------------

def _snapshot(request_id: str, outcome: str, **more: Any) -> dict[str, Any]:
    data = {**GOOD, "request_id": request_id, "outcome": outcome, "subject_refs": [ref("c1")], **more}
    if outcome in ("produced", "partially_produced"):
        data["data_categories"] = ["user.contact.email"]
    return data


def _in_force_from_january(engine: sa.Engine, manifest: Any) -> sa.Engine:
    """A store whose manifest is in force before the --as-of times these tests ask about: before
    the first version every --as-of question is an InputError (review of issue 21)."""
    from registry.model.declarations import declare

    declare(engine, manifest, datetime(2026, 1, 1, tzinfo=timezone.utc))
    return engine


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _append(engine: sa.Engine, *snapshots: tuple[str, dict[str, Any]]) -> None:
    with engine.begin() as conn:
        append_snapshots(conn, [(_at(moment), data, "test") for moment, data in snapshots])


def test_as_of_reads_the_signed_time_not_the_column_beside_it(engine: sa.Engine, manifest: Any) -> None:
    declared = _in_force_from_january(engine, manifest)
    _append(declared, ("2026-03-10T10:00:00Z", _snapshot("REQ-1", "pending")), ("2026-03-10T10:00:00Z", _snapshot("REQ-2", "pending")),
            ("2026-03-10T12:00:00Z", _snapshot("REQ-2", "no_data")))
    as_of = _at("2026-03-10T11:00:00Z")

    def seen() -> list[tuple[str, str]]:
        return [(d.request_id, d.outcome) for d in subject(declared, ref("c1"), as_of).disclosures]

    assert seen() == [("REQ-1", "pending"), ("REQ-2", "pending")]
    with declared.begin() as conn:  # an edit of the column the chain does not cover
        conn.exec_driver_sql("UPDATE ledger_entry SET snapshot_time = '2030-01-01 00:00:00.000000' WHERE seq = 1")
        conn.exec_driver_sql("UPDATE ledger_entry SET snapshot_time = '2026-03-10 09:00:00.000000' WHERE seq = 3")
    assert verify(declared).ok  # the chain holds: the column was never evidence
    assert seen() == [("REQ-1", "pending"), ("REQ-2", "pending")]
    assert [(d.request_id, d.outcome) for d in list_disclosures(declared)[0]] == [("REQ-1", "pending"), ("REQ-2", "no_data")]


@pytest.mark.parametrize("order", ["in time order", "logged late"])
def test_the_current_state_is_the_newest_instant_then_the_chain(declared: sa.Engine, order: str) -> None:
    pending = ("2026-03-10T10:00:00Z", _snapshot("REQ-1", "pending"))
    produced = ("2026-03-10T10:00:00.500000Z", _snapshot("REQ-1", "produced"))
    _append(declared, *((pending, produced) if order == "in time order" else (produced, pending)))
    rows, _ = list_disclosures(declared)
    assert [(r.request_id, r.outcome, r.versions) for r in rows] == [("REQ-1", "produced", 2)]
    # the same instant: the later entry in the chain is the current state
    _append(declared, ("2026-03-10T10:00:00.5Z", _snapshot("REQ-1", "challenged")))
    assert list_disclosures(declared)[0][0].outcome == "challenged"


def test_as_of_compares_instants_written_with_offsets(engine: sa.Engine, manifest: Any) -> None:
    declared = _in_force_from_january(engine, manifest)
    _append(declared, ("2026-03-10T10:00:00Z", _snapshot("REQ-1", "pending")))
    with declared.connect() as conn:
        body = conn.exec_driver_sql("SELECT body FROM ledger_entry").scalar_one()
    assert '"snapshot_time":"2026-03-10T10:00:00Z"' in body
    assert [d.request_id for d in subject(declared, ref("c1"), datetime(2026, 3, 10, 11, 0, tzinfo=timezone.utc)).disclosures] == ["REQ-1"]
    assert subject(declared, ref("c1"), datetime(2026, 3, 10, 10, 0, tzinfo=timezone.utc)).disclosures == []


def test_a_kafka_snapshot_with_contradicting_dates_is_a_dead_letter(declared: sa.Engine) -> None:
    from registry.intake.deadletters import list_dead_letters
    from registry.intake.ingest import Ingestor

    from .helpers import record

    def event(event_id: str, **data: Any) -> dict[str, Any]:
        return {"specversion": "1.0", "id": event_id, "source": "//legal/intake", "type": "registry.disclosure.v1",
                "time": "2026-03-12T10:00:00Z", "data": {**GOOD, **data}}

    counts = Ingestor(declared).ingest([record(event("d1", outcome="no_data", disclosed_at="2026-03-01T09:00:00Z")),
                                        record(event("d2", notice="delayed", notice_due="2026-03-09")),
                                        record(event("d3", request_id="REQ-10"))])
    assert (counts.ingested, counts.dead_lettered) == (1, 2)
    letters = list_dead_letters(declared)
    assert sorted(d.reason for d in letters) == ["invalid_data", "invalid_data"]
    assert sorted(d.detail.split(":")[0] for d in letters) == ["data.disclosed_at", "data.notice_due"]
