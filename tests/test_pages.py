"""The pages as a person reads them (issue 16): every drift finding links to a flow row that
exists on its recipient's page, the disclosure form takes a browser's date-times and category
ticks, errors name the field in words, history says who changed what, the report counts the
year's requests, the dashboard's numbers are the library's, and stored text is escaped."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import Counter

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from examples.blausen.generate import disclosure_events, generate
from registry.answers.drift import drift
from registry.intake.deadletters import list_dead_letters
from registry.intake.ingest import Ingestor
from registry.ledger.disclosures import log_disclosure, request_history
from registry.model.events import RawRecord
from registry.stream.status import RecentOffsets
from registry.web import create_app
from registry.web.disclosure_form import snapshot_from_form
from registry.web.pages import flow_anchor
from registry.web.tokens import create_token

from .test_web import csrf_of, sign_in

FORM = {"request_id": "F-1", "authority": "Travis County Sheriff", "authority_country": "US", "instrument": "search_warrant",
        "received_at": "2026-04-02T10:00", "outcome": "pending", "notice": "given"}


@pytest.fixture
def db_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    """Pages are a layer over the store whose tests run on both databases: SQLite suffices here."""
    return f"sqlite:///{tmp_path / 'pages.db'}"


def _client(declared: sa.Engine, db_url: str, role: str) -> TestClient:
    lines = [line for line, _ in generate(800, seed=3, poison_per_reason=1)] + disclosure_events()
    Ingestor(declared).ingest(RawRecord(value=line) for line in lines)
    client = TestClient(create_app(db_url))
    assert sign_in(client, create_token(declared, role, f"{role}-user").token).status_code == 303
    return client


def test_drift_findings_link_to_flows_on_their_recipient_pages(declared: sa.Engine, db_url: str) -> None:
    client = _client(declared, db_url, "auditor")
    page = client.get("/drift").text
    rows = drift(declared)
    flow_links = re.findall(r'href="/recipients/([^"#]+)#flow-([0-9a-f]{10})"', page)
    assert len(flow_links) == sum(1 for r in rows if r.category) > 3
    for recipient, anchor in flow_links:
        detail = client.get(f"/recipients/{recipient}")
        assert detail.status_code == 200 and f'id="flow-{anchor}"' in detail.text
    assert {k for k in Counter(r.kind for r in rows)} <= set(re.findall(r'<section id="([a-z_]+)"', page))
    row = next(r for r in rows if r.kind == "undeclared_source")
    assert f"#flow-{flow_anchor(row.source, row.category, row.purpose, row.legal_basis)}" in page
    missing = client.get("/recipients/nobody-at-all")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    dashboard = client.get("/").text
    # the stream card: no broker configured here, so the lag is unknown (never a made-up 0)
    assert re.search(r'title="consumer group dataflow-registry;[^"]*"><b>unknown</b>events waiting for the consumers', dashboard)
    for reason, n in Counter(d.reason for d in list_dead_letters(declared)).items():
        assert re.search(rf'href="/dead-letters\?reason={reason}">[^<]+</a></td><td class="num">{n}</td>', dashboard)
    assert "True" not in client.get("/recipients?category=user").text.replace("TrueType", "")
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", re.sub(r"<[^>]+>", "", client.get("/recipients/stripe").text))


def test_the_form_reads_a_browser_s_fields_and_names_errors_in_words(declared: sa.Engine, db_url: str) -> None:
    client = _client(declared, db_url, "legal")
    csrf = csrf_of(client, "/disclosures")
    missing = client.post("/disclosures", data={**FORM, "notice": "delayed", "csrf_token": csrf})
    assert missing.status_code == 422
    error = re.search(r'id="form-error">(.*?)</div>', missing.text, re.S)
    words = re.sub(r"<[^>]+>", "", error.group(1)) if error else ""
    assert "Notice due by" in words and "notice_due" not in words and 'href="#f-notice_due"' in missing.text
    assert 'aria-invalid="true"' in missing.text and 'value="Travis County Sheriff"' in missing.text
    bad = client.post("/disclosures", data={**FORM, "request_id": "F-2", "outcome": "produced", "authority": "<script>alert(1)</script>",
                                            "data_categories": ["user.contact.email", "user.name"], "csrf_token": csrf})
    assert bad.status_code == 200 and "Logged F-2 version 1." in bad.text
    assert "<script>alert(1)</script>" not in bad.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in bad.text
    (latest,) = request_history(declared, "F-2")
    assert latest.data["received_at"] == "2026-04-02T10:00:00Z"
    assert latest.data["data_categories"] == ["user.contact.email", "user.name"] and latest.origin == "web:legal-user"
    history = client.get("/disclosures/requests/F-2").text
    assert "legal-user (web form)" in history and "2026-04-02 10:00 UTC" in history and "Search warrant" in history
    report = client.get("/disclosures/report?year=2026").text
    assert re.search(r'id="requests">5</strong>', report)  # four of the demo's, F-2
    assert client.get("/disclosures/requests/none-such").status_code == 404
    slashed = client.post("/disclosures", data={**FORM, "request_id": "2026/CV/17", "csrf_token": csrf})
    assert "Logged 2026/CV/17 version 1." in slashed.text  # landed on the request's own page
    assert 'href="/disclosures/requests/2026/CV/17"' in client.get("/disclosures").text
    assert "Request 2026/CV/17" in client.get("/disclosures/requests/2026/CV/17").text


def test_history_lists_who_changed_what(declared: sa.Engine) -> None:
    first = {"request_id": "H-1", "authority": "Court", "authority_country": "DE", "instrument": "court_order",
             "received_at": "2026-03-02T09:00:00Z", "outcome": "pending", "notice": "pending"}
    log_disclosure(declared, str(first).replace("'", '"'), origin="web:ana")
    log_disclosure(declared, str({**first, "outcome": "no_data"}).replace("'", '"'), origin="file:bo")
    one, two = request_history(declared, "H-1")
    assert (one.version, one.origin, two.version, two.origin) == (1, "web:ana", 2, "file:bo")
    assert set(one.changes) == set(first) and two.changes == {"outcome": ("pending", "no_data")}


def test_snapshot_from_form() -> None:
    assert snapshot_from_form({"received_at": "2026-04-02T10:00", "disclosed_at": "2026-04-03T11:30:15", "subject_count": "3",
                               "data_categories": "user.name, user.contact.email", "notice_due": "", "request_id": "X",
                               "outcome": "produced"}) == {
        "received_at": "2026-04-02T10:00:00Z", "disclosed_at": "2026-04-03T11:30:15Z", "subject_count": 3,
        "data_categories": ["user.name", "user.contact.email"], "request_id": "X", "outcome": "produced"}


def test_templates_are_package_data() -> None:
    """An editable install hides missing package data: every file the pages read is declared."""
    import fnmatch
    import tomllib
    from pathlib import Path

    from registry.web import render

    root = Path(render.__file__).parent.parent
    patterns = tomllib.loads((root.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["registry"]
    needed = [p.relative_to(root).as_posix() for p in (root / "web").rglob("*") if p.is_file() and p.suffix != ".py"
              and "__pycache__" not in p.parts]
    assert "web/templates/base.html" in needed and "web/countries.json" in needed
    assert [n for n in needed if not any(fnmatch.fnmatch(n, pat) for pat in patterns)] == []


def test_the_record_of_processing_page_shows_times_for_people(declared: sa.Engine, db_url: str) -> None:
    client = _client(declared, db_url, "auditor")
    page = client.get("/ropa").text
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", page)
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", page)


def test_a_page_answers_bad_input_with_a_page(declared: sa.Engine, db_url: str) -> None:
    client = _client(declared, db_url, "auditor")
    answer = client.get("/recipients?category=Not%20A%20Key")
    assert answer.status_code == 422 and "Kind of personal data" in answer.text and 'role="alert"' in answer.text
    from registry.web.pages import router

    @router.get("/__boom")
    def boom() -> None:
        from registry.exceptions import InputError

        raise InputError("no such thing", "x")

    try:
        app = create_app(db_url)
        fresh = TestClient(app)
        assert sign_in(fresh, create_token(declared, "auditor", "a2").token).status_code == 303
        page = fresh.get("/__boom")
        assert page.status_code == 422 and page.headers["content-type"].startswith("text/html") and "no such thing" in page.text
    finally:
        router.routes.pop()


def test_the_suggested_manifest_snippet_quotes_event_strings() -> None:
    """A source is an event string: it must not add keys to the YAML a person copies."""
    import yaml

    from registry.answers.drift import DriftRow
    from registry.answers.drift_guide import suggested_manifest

    source = "//svc/checkout, //services/web]\n    transfer_mechanism: scc\n    x: [y"
    row = DriftRow(kind="undeclared_source", source=source, recipient="stripe", category="user.name",
                   purpose="essential.service.payment_processing", activity="billing", detail="", first_seen=None,
                   last_seen=None, events=1)
    snippet = suggested_manifest(row) or ""
    parsed = yaml.safe_load(snippet.replace("…, ", ""))
    assert parsed == {"activities": [{"key": "billing", "sources": [source]}]}


def test_dead_letters_say_where_they_came_from(declared: sa.Engine, db_url: str) -> None:
    from .helpers import transfer

    client = TestClient(create_app(db_url))
    token = create_token(declared, "admin", "admin-user").token
    bad = transfer("http-bad", data_categories=["user.telepathy"])
    posted = client.post("/api/events", json=bad, headers={"Authorization": f"Bearer {token}"})
    assert posted.json()["dead_lettered"] == 1
    Ingestor(declared).ingest_batch([RawRecord(value=b"{", topic="dataflow.transfers", partition=2, offset=41),
                                     RawRecord(value=b"[", topic="events.jsonl", offset=7)])
    assert sign_in(client, token).status_code == 303
    page = client.get("/dead-letters").text
    cells = [c.strip() for c in re.findall(r"<td>([^<>]*)</td></tr>", page)]  # the last column: where from
    assert sorted(cells) == ["HTTP API", "dataflow.transfers [2] @ 41", "events.jsonl, line 7"], cells


class _RefusingBroker:
    """A port that accepts each connection and closes it at once: a broker that is down, and a
    count of every attempt to reach it."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port, self.attempts = self.server.getsockname()[1], 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.attempts += 1
            conn.close()


@pytest.mark.clocked  # its bounds are wall-clock (a 1.5 s broker timeout): measured alone
def test_the_dashboard_does_not_wait_for_a_down_broker_on_every_load(declared: sa.Engine, db_url: str,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    broker = _RefusingBroker()
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", f"127.0.0.1:{broker.port}")
    app, now = create_app(db_url), [0.0]
    app.state.broker_offsets = RecentOffsets(clock=lambda: now[0])
    client = TestClient(app)
    assert sign_in(client, create_token(declared, "auditor", "a").token).status_code == 303
    unknown = re.compile(r"<b>unknown</b>events waiting for the consumers")
    began = time.monotonic()
    first = client.get("/")
    took = time.monotonic() - began
    asked = broker.attempts
    assert first.status_code == 200 and unknown.search(first.text) and asked > 0
    assert took < 3.5, f"the first load waited {took:.1f} s for the broker"  # was 5 s and more
    began = time.monotonic()
    second = client.get("/")
    assert unknown.search(second.text) and broker.attempts == asked, "a load within the cache window asked the broker again"
    assert time.monotonic() - began < 1.0
    now[0] += 11  # the window has passed: the next load asks again
    assert unknown.search(client.get("/").text) and broker.attempts > asked
    broker.server.close()
