"""Questions and drift on a small hand-built scenario. Every expected answer below is written
out by hand from the events listed, not computed by the code under test. Runs on SQLite and
PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
import sqlalchemy as sa

from registry.answers.drift import drift
from registry.answers.questions import recipient_detail, recipients_of, subject, subprocessor_chains
from registry.exceptions import InputError
from registry.intake.ingest import Ingestor
from registry.model.declarations import declare
from registry.model.manifest import parse_manifest

from .helpers import record, ref, transfer

MANIFEST = """
controller: {name: Example GmbH, country: DE}
recipients:
  - {key: cdn, name: CDN Inc, service: hosting, role: processor, country: US, transfer_mechanism: adequacy}
  - {key: mail, name: Mail Co, service: newsletter, role: processor, country: US, transfer_mechanism: scc}
  - {key: relay, name: Relay, service: communications, role: sub_processor, country: US, transfer_mechanism: scc, processor_of: mail}
  - {key: relay-store, name: Relay Storage, service: hosting, role: sub_processor, country: IE, processor_of: relay}
  - {key: ads, name: Ads Ltd, service: marketing, role: independent_controller, country: US, transfer_mechanism: none}
  - {key: crm, name: CRM GmbH, service: other, role: processor, country: DE}
activities:
  - {key: web, name: Web analytics, purposes: [analytics], legal_basis: consent, data_categories: [user.device], recipients: [cdn], sources: [//web]}
  - {key: newsletter, name: Newsletter, purposes: [marketing.communications], legal_basis: consent, data_categories: [user.contact.email, user.name], recipients: [mail]}
  - {key: ads-act, name: Ads, purposes: [marketing.advertising], legal_basis: consent, data_categories: [user.device.cookie_id], recipients: [ads], sources: [//web]}
  - {key: crm-act, name: CRM, purposes: [essential.service], legal_basis: contract, data_categories: [user.contact], recipients: [crm]}
"""
A, B = ref("subject-a"), ref("subject-b")
EMAIL, IP, COOKIE = "user.contact.email", "user.device.ip_address", "user.device.cookie_id"
ADS = "marketing.advertising.third_party.targeted"
EVENTS = [
    transfer("1", "2026-03-01T10:00:00Z", "//web", recipient="cdn", data_categories=[IP], purpose="analytics.reporting"),
    transfer("2", "2026-03-02T23:30:00Z", "//web", recipient="cdn", data_categories=[COOKIE], purpose="analytics.reporting"),
    transfer("3", "2026-03-03T00:00:00Z", "//app", recipient="cdn", data_categories=[IP], purpose="analytics.reporting"),
    transfer("4", "2026-03-01T12:00:00Z", "//mailer", recipient="mail", data_categories=[EMAIL],
             purpose="marketing.communications.email", subject_refs=[A], record_count=3),
    transfer("5", "2026-03-02T08:00:00Z", "//mailer", recipient="mail", data_categories=[EMAIL],
             purpose="marketing.communications.email", legal_basis="legitimate_interests"),
    transfer("6", "2026-03-02T09:00:00Z", "//web", recipient="ads", data_categories=[COOKIE], purpose=ADS, subject_refs=[A, B]),
    transfer("7", "2026-03-02T09:30:00Z", "//web", recipient="ads", data_categories=["user.location.precise"], purpose=ADS),
    transfer("8", "2026-03-01T11:00:00Z", "//web", recipient="cdn", data_categories=[COOKIE], purpose="marketing.advertising"),
    transfer("9", "2026-03-01T13:00:00Z", "//web", recipient="tracker", data_categories=[COOKIE], purpose="analytics.reporting"),
    transfer("10", "2026-03-04T10:00:00Z", "//web", recipient="cdn", data_categories=[IP], purpose="analytics",
             destination_country="CN"),
]


def t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)


@pytest.fixture
def scenario(engine: sa.Engine) -> sa.Engine:
    declare(engine, parse_manifest(MANIFEST))
    assert Ingestor(engine).ingest([record(e) for e in EVENTS]).ingested == 10
    return engine


def brief(rows) -> list[tuple]:  # type: ignore[no-untyped-def]
    return [(r.recipient, r.via, r.categories, r.events) for r in rows]


def test_recipients_of_a_category_covers_its_descendants(scenario: sa.Engine) -> None:
    assert brief(recipients_of(scenario, "user.device")) == [
        ("ads", None, [COOKIE], 1),
        ("cdn", None, [COOKIE, IP], 5),
        ("tracker", None, [COOKIE], 1),
    ]
    assert brief(recipients_of(scenario, "user.contact")) == [("mail", None, [EMAIL], 2)]
    assert recipients_of(scenario, "user.financial") == []


def test_recipient_rows_carry_the_manifest_and_the_dates(scenario: sa.Engine) -> None:
    cdn = next(r for r in recipients_of(scenario, "user.device") if r.recipient == "cdn")
    assert (cdn.name, cdn.service, cdn.role, cdn.country, cdn.declared) == ("CDN Inc", "hosting", "processor", "US", True)
    assert (cdn.first_seen, cdn.last_seen) == ("2026-03-01T10:00:00Z", "2026-03-04T10:00:00Z")
    tracker = next(r for r in recipients_of(scenario, "user.device") if r.recipient == "tracker")
    assert (tracker.declared, tracker.service) == (False, None)


def test_whole_day_window_since_inclusive_until_exclusive(scenario: sa.Engine) -> None:
    rows = recipients_of(scenario, "user.device", t("2026-03-02T00:00:00Z"), t("2026-03-03T00:00:00Z"))
    assert brief(rows) == [("ads", None, [COOKIE], 1), ("cdn", None, [COOKIE], 1)]  # event 3 sits on the until bound


def test_window_edges_inside_days(scenario: sa.Engine) -> None:
    rows = recipients_of(scenario, "user.device", t("2026-03-01T10:30:00Z"), t("2026-03-02T23:30:00Z"))
    assert brief(rows) == [("ads", None, [COOKIE], 1), ("cdn", None, [COOKIE], 1), ("tracker", None, [COOKIE], 1)]
    cdn = rows[1]
    assert (cdn.first_seen, cdn.last_seen) == ("2026-03-01T11:00:00Z", "2026-03-01T11:00:00Z")  # event 8 only
    exact = recipients_of(scenario, "user.device", t("2026-03-01T10:00:00Z"), t("2026-03-01T10:00:00.000001Z"))
    assert brief(exact) == [("cdn", None, [IP], 1)]  # event 1, on the since bound


def test_window_bounds_on_the_hour(scenario: sa.Engine) -> None:
    rows = recipients_of(scenario, "user.device", t("2026-03-01T11:00:00Z"), t("2026-03-02T09:00:00Z"))
    assert brief(rows) == [("cdn", None, [COOKIE], 1), ("tracker", None, [COOKIE], 1)]  # events 8 and 9; 6 is on the bound
    rows = recipients_of(scenario, "user.device", t("2026-03-02T09:00:00Z"), t("2026-03-02T09:00:01Z"))
    assert brief(rows) == [("ads", None, [COOKIE], 1)]  # event 6 alone, inside one hour


def test_subprocessors_inherit_two_levels_deep(scenario: sa.Engine) -> None:
    assert brief(recipients_of(scenario, "user.contact", include_subprocessors=True)) == [
        ("mail", None, [EMAIL], 2),
        ("relay", "mail", [EMAIL], 2),
        ("relay-store", "relay", [EMAIL], 2),
    ]


def test_recipient_detail(scenario: sa.Engine) -> None:
    detail = recipient_detail(scenario, "mail")
    assert [(f.source, f.category, f.purpose, f.legal_basis, f.events, f.records) for f in detail.flows] == [
        ("//mailer", EMAIL, "marketing.communications.email", "consent", 1, 3),
        ("//mailer", EMAIL, "marketing.communications.email", "legitimate_interests", 1, 1),
    ]
    assert recipient_detail(scenario, "crm").flows == []  # declared, nothing observed
    with pytest.raises(InputError):
        recipient_detail(scenario, "nobody")


def test_subject_access_and_erasure_fanout(scenario: sa.Engine) -> None:
    a = subject(scenario, A)
    assert [(x.recipient, x.source, x.categories, x.purposes, x.events, x.first_seen) for x in a.transfers] == [
        ("ads", "//web", [COOKIE], [ADS], 1, "2026-03-02T09:00:00Z"),
        ("mail", "//mailer", [EMAIL], ["marketing.communications.email"], 1, "2026-03-01T12:00:00Z"),
    ]
    assert a.notify_on_erasure == ["ads", "mail", "relay", "relay-store"]
    assert subject(scenario, B).notify_on_erasure == ["ads"]
    nobody = subject(scenario, ref("nobody"))
    assert (nobody.transfers, nobody.disclosures, nobody.notify_on_erasure) == ([], [], [])
    with pytest.raises(InputError):
        subject(scenario, "jane@example.org")


def test_drift_kinds_and_precedence(scenario: sa.Engine) -> None:
    rows = [(r.kind, r.source, r.recipient, r.category, r.purpose, r.activity, r.events) for r in drift(scenario)]
    assert rows == [
        ("undeclared_recipient", "//web", "tracker", COOKIE, "analytics.reporting", None, 1),
        ("undeclared_purpose", "//web", "cdn", COOKIE, "marketing.advertising", None, 1),
        ("undeclared_category", "//web", "ads", "user.location.precise", ADS, "ads-act", 1),
        ("legal_basis_mismatch", "//mailer", "mail", EMAIL, "marketing.communications.email", "newsletter", 1),
        ("undeclared_source", "//app", "cdn", IP, "analytics.reporting", "web", 1),
        ("transfer_without_safeguard", None, "ads", None, None, None, 2),
        ("transfer_without_safeguard", None, "cdn", None, None, None, 1),
        ("declared_not_observed", None, "crm", None, None, "crm-act", 0),
    ]
    cn = next(r for r in drift(scenario) if r.kind == "transfer_without_safeguard" and r.recipient == "cdn")
    assert "CN" in cn.detail


def test_drift_in_a_window(scenario: sa.Engine) -> None:
    kinds = [(r.kind, r.recipient) for r in drift(scenario, t("2026-03-04T00:00:00Z"), None)]
    # only event 10 is left: cdn to CN; every other activity is then unconfirmed
    assert kinds == [("transfer_without_safeguard", "cdn"), ("declared_not_observed", "ads"),
                     ("declared_not_observed", "crm"), ("declared_not_observed", "mail")]


def test_subprocessor_chains(scenario: sa.Engine) -> None:
    assert [(r.recipient, r.processor_of, r.chain, r.country) for r in subprocessor_chains(scenario)] == [
        ("relay", "mail", ["mail", "relay"], "US"),
        ("relay-store", "relay", ["mail", "relay", "relay-store"], "IE"),
    ]
