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


def test_legal_user_logs_a_request_and_follows_it(server: tuple[str, dict[str, str]], axe: str | None) -> None:
    from playwright.sync_api import sync_playwright

    base, tokens = server
    due = (datetime.now(timezone.utc).date() + timedelta(days=10)).isoformat()
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        _sign_in(page, base, tokens["legal"], "/disclosures")
        # the demo's requests: open and overdue ones first, with their Art. 48 warnings beside them
        attention = page.inner_text("#attention")
        assert "CN-2026-002" in attention and "GDPR Art. 48" in attention and "days overdue" in attention
        assert page.inner_text("#verify").startswith("Ledger verifies: 5 entries")

        page.fill("#f-request_id", "SW-2026-7")
        page.fill("#f-authority", "Travis County Sheriff")
        page.select_option("#f-authority_country", label="United States (US)")
        page.fill("#f-received_at", "2026-04-02T10:00")
        page.check("input[name=instrument][value=search_warrant]")
        page.check("input[name=outcome][value=produced]")
        page.check("input[name=notice][value=delayed]")
        page.fill("#cat-search", "email")
        assert page.locator("#cat-list label:visible").count() < 10
        page.check("#cat-list input[value='user.contact.email']")
        page.click("#log-request")
        error = page.inner_text("#form-error")
        assert "Notice due by" in error and "notice_due" not in error
        assert page.get_attribute("#f-notice_due", "aria-invalid") == "true"
        assert page.input_value("#f-request_id") == "SW-2026-7" and page.is_checked("#cat-list input[value='user.contact.email']")
        assert "User Contact Email" in page.inner_text("#cat-selected")
        _check(page, "disclosure-error", axe)

        page.fill("#f-notice_due", due)
        page.click("#log-request")
        assert page.inner_text("#logged") == "Logged SW-2026-7 version 1."
        row = page.locator("#attention tr:has-text('SW-2026-7')")
        assert "10 days" in row.inner_text() and due in row.inner_text() and "2026-04-02 10:00 UTC" in row.inner_text()
        assert page.inner_text("#verify").startswith("Ledger verifies: 6 entries")
        page.set_viewport_size({"width": 1280, "height": 900})
        _check(page, "disclosures", axe)

        row.locator("a:has-text('SW-2026-7')").click()
        page.wait_for_url(f"{base}/disclosures/requests/SW-2026-7")
        history = page.inner_text("#history")
        assert "lena (web form)" in history and "Search warrant" in history and "Email" in history
        _check(page, "history", axe)
        page.goto(f"{base}/disclosures/requests/SUB-2026-014")
        history = page.inner_text("#history")
        assert "Pending → Produced" in history and "//services/legal (event stream)" in history

        page.click("a:has-text('Transparency report 2026')")
        page.wait_for_url(re.compile(r"/disclosures/report\?year=2026"))
        assert page.inner_text("#requests") == "5"
        assert page.locator("svg.chart rect").count() >= 3 and "Search warrant" in page.inner_text("main")
        _check(page, "report", axe)
        browser.close()
