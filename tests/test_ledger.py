"""The disclosure ledger: versions, tamper evidence, bad input, file + Kafka dedupe, report.
Runs on SQLite and PostgreSQL; expected figures are counted by hand."""

from __future__ import annotations

from datetime import date
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
import yaml

from registry.answers.questions import subject
from registry.exceptions import DisclosureError
from registry.intake.ingest import Ingestor
from registry.ledger.chain import verify
from registry.ledger.disclosures import list_disclosures, log_disclosure
from registry.reports.transparency import transparency_report

from .conftest import all_text, table_counts
from .helpers import record, ref

BASE = {"request_id": "HC-1", "authority": "District Court of Harris County", "authority_country": "US",
        "instrument": "subpoena", "received_at": "2026-03-02T09:00:00Z", "outcome": "pending", "notice": "pending"}


CHAIN = {"ok", "entries", "first_bad"}  # anchors and signatures: tests/test_ledger_signed.py


def snap(**changes: Any) -> str:
    return yaml.safe_dump({**BASE, **changes})


def test_three_versions_one_current_state(declared: sa.Engine) -> None:
    a = ref("customer-1")
    assert log_disclosure(declared, snap()).version == 1
    assert log_disclosure(declared, snap(notice="delayed", notice_due="2026-06-01")).version == 2
    third = log_disclosure(declared, snap(outcome="produced", data_categories=["user.contact.email"], subject_refs=[a],
                                          disclosed_at="2026-03-20T10:00:00Z", notice="given"))
    assert (third.request_id, third.version, len(third.hash)) == ("HC-1", 3, 64)
    assert table_counts(declared)["ledger_entry"] == 3
    rows, _ = list_disclosures(declared)
    assert [(r.request_id, r.outcome, r.notice, r.versions) for r in rows] == [("HC-1", "produced", "given", 3)]
    assert [(d.request_id, d.outcome) for d in subject(declared, a).disclosures] == [("HC-1", "produced")]
    assert verify(declared).model_dump(include=CHAIN) == {"ok": True, "entries": 3, "first_bad": None}


def test_a_fresh_ledger_verifies(engine: sa.Engine) -> None:
    assert verify(engine).model_dump(include=CHAIN) == {"ok": True, "entries": 0, "first_bad": None}


@pytest.fixture
def three_requests(declared: sa.Engine) -> sa.Engine:
    for rid in ("R-1", "R-2", "R-3"):
        log_disclosure(declared, snap(request_id=rid))
    assert verify(declared).ok
    return declared


def _exec(engine: sa.Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def test_one_changed_byte_is_detected(three_requests: sa.Engine) -> None:
    _exec(three_requests, "UPDATE ledger_entry SET body = REPLACE(body, 'Harris', 'Harrls') WHERE seq = 2")
    assert verify(three_requests).model_dump(include=CHAIN) == {"ok": False, "entries": 2, "first_bad": "R-2"}


def test_a_deleted_entry_is_detected(three_requests: sa.Engine) -> None:
    _exec(three_requests, "DELETE FROM ledger_entry WHERE seq = 2")
    assert verify(three_requests).model_dump(include=CHAIN) == {"ok": False, "entries": 2, "first_bad": "R-3"}


def test_swapped_entries_are_detected(three_requests: sa.Engine) -> None:
    _exec(three_requests, "UPDATE ledger_entry SET seq = 99 WHERE seq = 1", "UPDATE ledger_entry SET seq = 1 WHERE seq = 2",
          "UPDATE ledger_entry SET seq = 2 WHERE seq = 99")
    assert verify(three_requests).model_dump(include=CHAIN) == {"ok": False, "entries": 1, "first_bad": "R-2"}


def test_a_rehashed_edit_is_still_detected(three_requests: sa.Engine) -> None:
    """Editing an entry and recomputing its own hash breaks the next entry's link."""
    from registry.ledger.heads import entry_hash

    with three_requests.begin() as conn:
        prev, body = conn.exec_driver_sql("SELECT prev_hash, body FROM ledger_entry WHERE seq = 2").one()
        forged = body.replace("pending", "rejected")
        conn.execute(sa.text("UPDATE ledger_entry SET body = :b, hash = :h WHERE seq = 2"), {"b": forged, "h": entry_hash(prev, forged.encode())})
    assert verify(three_requests).model_dump(include=CHAIN) == {"ok": False, "entries": 3, "first_bad": "R-3"}


@pytest.mark.parametrize(("changes", "path"), [
    ({"authority": None}, "authority"),
    ({"instrument": "pigeon"}, "instrument"),
    ({"notice": "delayed"}, "notice_due"),
    ({"subject_refs": ["jane.doe@example.org"]}, "subject_refs[0]"),
    ({"outcome": "produced"}, "data_categories"),
])
def test_bad_input_names_the_field_and_stores_nothing(declared: sa.Engine, changes: dict, path: str) -> None:
    document = {k: v for k, v in {**BASE, **changes}.items() if v is not None}
    with pytest.raises(DisclosureError) as info:
        log_disclosure(declared, yaml.safe_dump(document))
    assert info.value.path == path
    assert table_counts(declared)["ledger_entry"] == 0
    assert "jane.doe" not in all_text(declared)


def test_same_request_by_file_and_by_kafka_event_is_one_version(declared: sa.Engine) -> None:
    data = {**BASE, "notice": "delayed", "notice_due": "2026-06-01"}
    event = {"specversion": "1.0", "id": "cms-1", "source": "//services/case-management", "type": "registry.disclosure.v1",
             "time": "2026-03-02T10:00:00Z", "data": data}
    assert Ingestor(declared).ingest([record(event)]).ingested == 1
    assert log_disclosure(declared, yaml.safe_dump(data)).version == 1
    assert table_counts(declared)["ledger_entry"] == 1
    assert log_disclosure(declared, yaml.safe_dump({**data, "notice": "given"})).version == 2


def test_open_and_overdue(declared: sa.Engine) -> None:
    log_disclosure(declared, snap(request_id="A", notice="delayed", notice_due="2026-04-01"))
    log_disclosure(declared, snap(request_id="B", notice="delayed", notice_due="2026-04-01"))
    log_disclosure(declared, snap(request_id="B", notice="given"))  # notice given later: not overdue
    log_disclosure(declared, snap(request_id="C", outcome="rejected", notice="delayed", notice_due="2026-05-01"))
    today = date(2026, 4, 15)
    assert [r.request_id for r in list_disclosures(declared, open_only=True, today=today)[0]] == ["A", "B"]
    assert [r.request_id for r in list_disclosures(declared, overdue_only=True, today=today)[0]] == ["A"]
    assert [r.request_id for r in list_disclosures(declared, overdue_only=True, today=date(2026, 5, 2))[0]] == ["A", "C"]


def test_art48_warning_for_third_country_orders_without_an_agreement(declared: sa.Engine) -> None:
    log_disclosure(declared, snap(request_id="US-1"))
    log_disclosure(declared, snap(request_id="US-2", legal_reference="MLAT request 2026/77"))
    log_disclosure(declared, snap(request_id="DE-1", authority="Amtsgericht Berlin", authority_country="DE", instrument="court_order"))
    log_disclosure(declared, snap(request_id="US-3", instrument="search_warrant"))
    _, warnings = list_disclosures(declared)
    assert len(warnings) == 1 and warnings[0].startswith("US-1: subpoena from District Court of Harris County (US)")


def test_transparency_report_figures(declared: sa.Engine) -> None:
    refs = [ref(f"s{i}") for i in range(4)]
    cats = ["user.contact.email"]
    log_disclosure(declared, snap(request_id="1", outcome="produced", data_categories=cats, subject_refs=refs[:2], notice="given"))
    log_disclosure(declared, snap(request_id="2", instrument="court_order", authority_country="GB", authority="High Court",
                                  outcome="partially_produced", data_categories=cats, subject_count=5, notice="delayed", notice_due="2026-09-01"))
    log_disclosure(declared, snap(request_id="3", instrument="search_warrant", outcome="no_data", subject_refs=refs, notice="not_given"))
    log_disclosure(declared, snap(request_id="4", outcome="rejected", notice="prohibited"))
    log_disclosure(declared, snap(request_id="4", outcome="challenged", notice="prohibited"))  # a second version, same request
    log_disclosure(declared, snap(request_id="5", received_at="2025-12-30T09:00:00Z", outcome="produced", data_categories=cats,
                                  subject_refs=refs, notice="given"))  # another year
    report, warnings = transparency_report(declared, 2026)
    assert report.model_dump() == {
        "year": 2026, "requests": 4,
        "by_instrument": {"court_order": 1, "search_warrant": 1, "subpoena": 2},
        "by_outcome": {"challenged": 1, "no_data": 1, "partially_produced": 1, "produced": 1},
        "by_country": {"GB": 1, "US": 3},
        "subjects_affected": 7,  # 2 refs in request 1 + subject_count 5 in request 2
        "notice": {"delayed": 1, "given": 1, "not_given": 1, "prohibited": 1},
        "half": None, "emergency": 0, "median_days_to_disclose": None, "warnings": warnings,
    }
    assert [w.split(":")[0] for w in warnings] == ["1", "2", "4"]  # subpoenas and court orders from outside the EEA (US, GB)
    assert orjson.loads(orjson.dumps(report.model_dump()))["year"] == 2026
