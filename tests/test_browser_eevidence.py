"""In headless Chromium (as tests/test_browser.py): a legal user logs an emergency European
Production Order through the form (/disclosures/new) and sees its 8-hour countdown on the request
page, the disclosures page and the dashboard; once disclosed_at is logged (Update this request),
it leaves the open list."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from .test_browser import _browser, _check, _sign_in, axe, db_url, pytestmark, server  # noqa: F401  (fixtures)

COUNTDOWN = re.compile(r"^(7 h 5\d min|8 h 0 min) left$")


def _log(page: Any, received: str) -> None:
    """A new request through the empty form; the Emergency box shows once the instrument is an EU production order."""
    page.fill("#f-request_id", "EPOC-2026-1")
    page.fill("#f-authority", "Parquet de Paris")
    page.select_option("#f-authority_country", label="France (FR)")
    page.fill("#f-received_at", received)
    assert not page.is_visible("#f-emergency") and not page.is_visible("#f-confirmed_at")
    page.check("input[name=instrument][value=eu_production_order]")
    assert page.is_visible("#f-emergency") and not page.is_visible("#f-confirmed_at")
    page.check("#f-emergency")
    page.check("input[name=notice][value=pending]")
    page.check("input[name=outcome][value=pending]")
    page.click("#log-request")


def _disclose(page: Any, disclosed: str) -> None:
    """The next version through Update this request: the form keeps the emergency order as logged."""
    page.click("#update-request")
    page.wait_for_url(re.compile(r"/disclosures/new\?update=EPOC-2026-1$"))
    assert page.is_checked("input[name=instrument][value=eu_production_order]") and page.is_checked("#f-emergency")
    page.check("input[name=outcome][value=produced]")
    page.check("#cat-list input[value='user.contact.email']")
    page.fill("#f-disclosed_at", disclosed)
    page.click("#log-request")


def test_legal_logs_an_emergency_production_order_and_sees_its_countdown(server: tuple[str, dict[str, str]], axe: str | None) -> None:
    from playwright.sync_api import sync_playwright

    base, tokens = server
    received = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M")
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        _sign_in(page, base, tokens["legal"], "/disclosures/new")
        _log(page, received)
        page.wait_for_url(f"{base}/disclosures/requests/EPOC-2026-1?logged=1")
        assert page.inner_text("#logged") == "Logged EPOC-2026-1 version 1."
        row = page.inner_text("#clock-row")
        assert "Data due (emergency)" in row and re.search(r"(7 h 5\d min|8 h 0 min) left", row), row
        _check(page, "eevidence-request", axe)

        page.goto(f"{base}/disclosures")
        clock = page.locator("#clocks tr[data-request='EPOC-2026-1'] .clock")
        assert COUNTDOWN.match(clock.inner_text().strip()), clock.inner_text()
        assert "due" in (clock.get_attribute("class") or "")  # amber: within 24 hours
        assert "emergency" in page.inner_text("#clocks tr[data-request='EPOC-2026-1']")
        listed = page.inner_text("#requests tr:has-text('EPOC-2026-1')")
        assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC\s+\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC", listed), listed  # received, due
        page.evaluate("window.scrollTo(0, 0)")
        _check(page, "eevidence-disclosures", axe)
        # the script keeps the same words as the server (it rewrites the text on load)
        assert COUNTDOWN.match(page.locator("#clocks tr[data-request='EPOC-2026-1'] .clock").inner_text().strip())

        page.goto(f"{base}/")
        assert COUNTDOWN.match(page.locator("#clocks tr[data-request='EPOC-2026-1'] .clock").inner_text().strip())
        _check(page, "eevidence-dashboard", axe)

        page.goto(f"{base}/disclosures/requests/EPOC-2026-1")
        _disclose(page, received)
        page.wait_for_url(f"{base}/disclosures/requests/EPOC-2026-1?logged=2")
        assert page.inner_text("#logged") == "Logged EPOC-2026-1 version 2."
        assert "answered" in page.inner_text("#clock-row")
        page.goto(f"{base}/disclosures")
        assert page.locator("#clocks tr[data-request='EPOC-2026-1']").count() == 0
        assert "EPOC-2026-1" not in page.inner_text("#deadlines")
        browser.close()
