"""The paths a person takes through the pages, in headless Chromium (Debian's package) driven by
Playwright. An auditor signs in, goes from the dashboard to a recipient and on to its flow's
drift finding; a legal user logs a request through the form with the pickers, sees the inline
error, sees it listed with its deadline, opens its history and the year's report. Every page is
photographed at 1280 and 390 px wide (out/screenshots/) and checked with axe-core: no serious
or critical violation, and nothing wider than a phone's screen. The session cookie is not the
token and is HttpOnly and SameSite=Strict."""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest
import sqlalchemy as sa

from examples.blausen.generate import disclosure_events, generate
from registry.intake.ingest import Ingestor
from registry.model.events import RawRecord
from registry.web.tokens import create_token

from .accessibility import axe_source, serious_violations
from .conftest import ROOT
from .helpers import live_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "out" / "screenshots"
WIDTHS = {"wide": (1280, 900), "narrow": (390, 844)}
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)")


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'browser.db'}"


@pytest.fixture
def server(declared: sa.Engine, db_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    lines = [line for line, _ in generate(2000, seed=8, poison_per_reason=1)] + disclosure_events()
    Ingestor(declared).ingest(RawRecord(value=line) for line in lines)
    tokens = {"auditor": create_token(declared, "auditor", "ada").token, "legal": create_token(declared, "legal", "lena").token}
    with live_server(db_url) as base:
        yield base, tokens


@pytest.fixture(scope="module")
def axe() -> str | None:
    source = axe_source()
    if source is None:
        print("axe-core could not be installed (no npm?): the smaller built-in accessibility check runs instead")
    return source


def _browser(p: Any) -> Any:
    return p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)


def _sign_in(page: Any, base: str, token: str, path: str = "/") -> None:
    page.goto(f"{base}{path}")
    assert "/login" in page.url
    page.fill("#token", token)
    page.click("form button")
    page.wait_for_url(re.compile(re.escape(base + path) + r"$"))


def _check(page: Any, name: str, axe: str | None) -> None:
    """Screenshots at both widths, axe at both, and no sideways scrolling of the page on a phone."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        page.screenshot(path=str(SHOTS / f"{name}-{label}.png"), full_page=True)
        assert serious_violations(page, axe) == [], (name, label)
        if label == "narrow":
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"{name} is {overflow}px wider than a 390px screen"
    page.set_viewport_size({"width": WIDTHS["wide"][0], "height": WIDTHS["wide"][1]})


def test_auditor_goes_from_the_dashboard_to_a_recipient_and_its_drift(server: tuple[str, dict[str, str]], axe: str | None) -> None:
    from playwright.sync_api import sync_playwright

    base, tokens = server
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/login")
        _check(page, "login", axe)
        _sign_in(page, base, tokens["auditor"])
        assert "ada (auditor)" in page.inner_text("header")
        (cookie,) = page.context.cookies()
        assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == ("registry_session", True, "Strict")
        assert tokens["auditor"] not in cookie["value"] and page.evaluate("document.cookie") == ""
        assert page.evaluate("fetch('/api/drift', {credentials: 'include'}).then(r => r.status)") == 401
        assert page.locator("svg.chart rect").count() >= 20  # about 26 weeks of events
        assert "verifies" in page.inner_text(".cards")
        _check(page, "dashboard", axe)
        # keyboard: the first Tab reaches "Skip to content", Enter moves focus to the page's content;
        # the cards are links a keyboard reaches and opens
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "main"
        page.focus("a.card:has-text('drift findings')")
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/drift")
        page.go_back()

        page.click("a.card:has-text('dead letters')")
        page.wait_for_url(f"{base}/dead-letters")
        _check(page, "dead-letters", axe)
        page.go_back()
        page.click("a.card:has-text('recipients observed')")
        page.wait_for_url(re.compile(r"/recipients$"))
        page.select_option("#category", "user.device")
        page.click("form.filters button")
        page.wait_for_url(re.compile(r"category=user.device"))
        # names, keys on hover
        assert "user.device.cookie_id" not in page.inner_text("table") and page.locator("abbr[title='user.device.cookie_id']").count() > 3
        page.click("th a:has-text('Events')")  # sort by a column link
        page.click("th a:has-text('Events')")  # twice: descending
        counts = [int(t.replace(",", "")) for t in page.locator("tbody td.num").all_inner_texts()]
        assert counts == sorted(counts, reverse=True) and len(counts) > 3
        _check(page, "recipients", axe)

        page.click("a:has-text('Google Analytics (web analytics)')")
        page.wait_for_url(f"{base}/recipients/google-analytics")
        facts = page.inner_text("table.facts")
        assert "United States (US)" in facts and "adequacy decision" in facts and "Google Ads Data Processing Terms" in facts
        assert "True" not in facts and "yes" in facts
        assert page.locator("svg.chart rect").count() >= 20
        assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:", page.inner_text("main"))  # no raw RFC 3339 anywhere
        _check(page, "recipient", axe)

        page.click("#flows a.badge.warn >> nth=0")  # the flow's drift finding
        page.wait_for_url(re.compile(r"/drift#f-"))
        target = page.locator(".finding:target")
        assert target.count() == 1 and "Google Analytics" in target.inner_text()
        assert page.locator(".finding:target details summary").count() == 1
        _check(page, "drift", axe)
        target.locator("a:has-text('Open the flow')").click()
        assert page.locator("tr:target").count() == 1

        for path, name in (("/datamap", "datamap"), ("/ropa", "ropa"), ("/subject", "subject")):
            page.goto(f"{base}{path}")
            _check(page, name, axe)
        page.click("#logout")
        page.wait_for_url(f"{base}/login")
        page.goto(f"{base}/")
        assert "/login" in page.url
        browser.close()


def test_legal_logs_a_court_order_with_subjects_updates_it_and_finds_it_by_subject(
        server: tuple[str, dict[str, str]], axe: str | None) -> None:
    """Issue 22: the legal team's whole workflow through the form."""
    from playwright.sync_api import sync_playwright

    base, tokens = server
    today = datetime.now(timezone.utc).date()
    due = (today + timedelta(days=21)).isoformat()
    received = f"{(today - timedelta(days=2)).isoformat()}T09:15"
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        _sign_in(page, base, tokens["legal"], "/disclosures")
        attention = page.inner_text("#attention")
        assert "CN-2026-002" in attention and "GDPR Art. 48" in attention and "overdue" in attention
        assert page.inner_text("#verify").startswith("Ledger verifies: 5 entries")
        _check(page, "disclosures", axe)

        page.click("#new-request")
        page.wait_for_url(f"{base}/disclosures/new")
        # fields that do not apply yet are hidden
        assert not page.is_visible("#f-notice_due") and not page.is_visible("#cat-search")
        page.click("#log-request")  # empty: every missing field at once, the summary focused
        summary = page.inner_text("#form-error")
        assert "7 fields need attention" in summary and "Data disclosed" not in summary
        assert page.evaluate("document.activeElement.id") == "form-error"
        _check(page, "disclosure-error", axe)

        page.fill("#f-request_id", "CO-2026-77")
        page.fill("#f-authority", "Landgericht Berlin")
        page.select_option("#f-authority_country", label="Germany (DE)")
        page.fill("#f-received_at", received)
        page.check("input[name=instrument][value=court_order]")
        page.check("input[name=outcome][value=pending]")
        page.check("input[name=notice][value=delayed]")
        assert page.is_visible("#f-notice_due") and not page.is_visible("#cat-search")
        page.fill("#f-notice_due", due)
        page.fill("#f-notice_reason", "Gag order 27 O 112/26")
        page.fill("#f-subject_ids", "customer-42\ncustomer-7")
        page.click("#log-request")
        page.wait_for_url(f"{base}/disclosures/requests/CO-2026-77?logged=1")
        assert page.inner_text("#logged") == "Logged CO-2026-77 version 1."
        assert page.inner_text("#countdown") == "21 days left"
        assert page.inner_text("#subjects").startswith("2")
        _check(page, "request", axe)

        page.click("#update-request")
        page.wait_for_url(f"{base}/disclosures/new?update=CO-2026-77")
        assert page.input_value("#f-authority") == "Landgericht Berlin" and page.input_value("#f-notice_due") == due
        assert page.is_checked("input[name=notice][value=delayed]") and "2 people are already attached" in page.inner_text("main")
        page.check("input[name=outcome][value=produced]")
        assert page.is_visible("#cat-search")
        page.fill("#cat-search", "email")
        assert page.locator("#cat-list label:visible").count() < 10
        page.check("#cat-list input[value='user.contact.email']")
        page.fill("#f-disclosed_at", f"{today.isoformat()}T08:00")
        page.click("#log-request")
        page.wait_for_url(f"{base}/disclosures/requests/CO-2026-77?logged=2")
        history = page.inner_text("#history")
        assert "Pending → Produced" in history and "lena (web form)" in history
        assert "Email" in page.inner_text("#facts") and page.inner_text("#countdown") == "21 days left"
        _check(page, "history", axe)

        page.click("a:has-text('All requests')")
        row = page.locator("#attention tr:has-text('CO-2026-77')")
        assert "21 days left" in row.inner_text() and due in row.inner_text()
        assert page.inner_text("#verify").startswith("Ledger verifies: 7 entries")

        page.goto(f"{base}/subject")
        page.fill("#subject_id", "customer-7")
        page.click("form.filters button")
        disclosures = page.inner_text("#subject-disclosures")
        assert "CO-2026-77" in disclosures and "Produced" in disclosures and "Landgericht Berlin" in disclosures
        _check(page, "subject-answer", axe)
        page.click("#subject-disclosures a:has-text('CO-2026-77')")
        page.wait_for_url(f"{base}/disclosures/requests/CO-2026-77")
        page.go_back()
        page.click("a:has-text('Art. 15 answer, ready to print')")
        page.wait_for_url(re.compile(r"/subject/answer\?ref=[0-9a-f]{64}$"))
        assert "CO-2026-77" in page.inner_text("#withheld")  # notice still delayed: not in what is sent
        _check(page, "art15", axe)

        page.goto(f"{base}/disclosures/report?year={today.year}")
        assert page.locator("svg.chart rect").count() >= 1
        _check(page, "report", axe)
        browser.close()


def test_auditor_downloads_reports_and_filters_match_the_cli(server: tuple[str, dict[str, str]], declared: sa.Engine,
                                                             manifest: Any, axe: str | None, tmp_path: Path) -> None:
    """Issue 22: downloads in the signed-in browser; each filter and as-of selector shows the
    CLI's --json numbers; the data map fits 1280 px; status and error pages."""
    import io
    import json
    from xml.etree import ElementTree

    import openpyxl
    from playwright.sync_api import sync_playwright
    from typer.testing import CliRunner

    from registry.cli import app as cli_app
    from registry.model.declarations import declare

    declare(declared, manifest, datetime(2025, 1, 1, tzinfo=timezone.utc))  # in force over the events' months too

    def cli(*args: str) -> Any:
        result = CliRunner().invoke(cli_app, ["--db", str(declared.url), "--json", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    base, tokens = server
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        _sign_in(page, base, tokens["auditor"], "/ropa")
        with page.expect_download() as info:
            page.click("#downloads a:has-text('XLSX')")
        book = openpyxl.load_workbook(io.BytesIO(Path(info.value.path()).read_bytes()))
        sheet = book["Record of processing"]
        column = [c.value for c in sheet[1]].index("Events observed")
        events = [r[column].value for r in sheet.iter_rows(min_row=2)]
        assert all(isinstance(v, int) for v in events)
        assert sum(events) == sum(a["evidence"]["events"] for a in cli("ropa", "--format", "json")["activities"]) > 0

        page.goto(f"{base}/datamap")
        width = page.evaluate("document.querySelector('#map svg').getBoundingClientRect().width")
        assert width <= 1280 and page.evaluate("document.documentElement.scrollWidth") <= 1280
        with page.expect_download() as info:
            page.click("#download-svg")
        ElementTree.fromstring(Path(info.value.path()).read_bytes())
        page.select_option("#recipient", "stripe")
        page.click("form.filters button")
        page.wait_for_url(re.compile(r"recipient=stripe"))
        assert "Stripe" in page.inner_text("#map")
        _check(page, "datamap", axe)

        page.goto(f"{base}/recipients")
        page.fill("#category-search", "email")  # the picker narrows as you type and picks the first match
        assert "email" in page.eval_on_selector("#category", "s => s.value")
        assert page.locator("#category option:not([hidden])").count() < 6
        page.fill("#category-search", "")
        page.select_option("#category", "user.contact")
        page.fill("#as_of", "2026-04-01")
        page.click("form.filters button")
        page.wait_for_url(re.compile(r"as_of=2026-04-01"))
        expected = cli("recipients", "--category", "user.contact", "--include-subprocessors", "--as-of", "2026-04-01")
        shown = [int(t.replace(",", "")) for t in page.locator("tbody td.num").all_inner_texts()]
        assert sorted(shown) == sorted(r["events"] for r in expected) and expected
        assert page.inner_text("#summary").startswith(f"{len(expected)} recipients")
        _check(page, "recipients-as-of", axe)

        page.goto(f"{base}/drift")
        page.fill("#since", "2026-03-01")
        page.fill("#until", "2026-05-01")
        page.click("form.filters button")
        page.wait_for_url(re.compile(r"since=2026-03-01"))
        findings = cli("drift", "--since", "2026-03-01", "--until", "2026-05-01")
        assert page.inner_text("#summary").startswith(f"{len(findings)} finding")
        kind = findings[0]["kind"]
        page.select_option("#kind", kind)
        page.click("form.filters button")
        assert page.inner_text("#summary").startswith(f"{sum(1 for f in findings if f['kind'] == kind)} finding")
        _check(page, "drift-filtered", axe)

        page.goto(f"{base}/ropa")
        page.fill("#as_of", "2026-04-01")
        page.click("form.filters button")
        page.wait_for_url(re.compile(r"as_of=2026-04-01"))
        for activity in cli("ropa", "--format", "json", "--as-of", "2026-04-01")["activities"]:
            assert f"{activity['evidence']['events']:,} events" in page.inner_text("main")
        _check(page, "ropa-as-of", axe)

        page.goto(f"{base}/dead-letters?q=raw")
        _check(page, "dead-letters-search", axe)
        page.goto(f"{base}/status")
        assert "Subject key" in page.inner_text("#status")
        _check(page, "status", axe)
        page.goto(f"{base}/no/such/page")
        assert "There is no page at this address." in page.inner_text("main")
        _check(page, "not-found", axe)
        browser.close()
