"""A person's path through the pages, in headless Chromium (Debian's package) driven by
Playwright: sign in with a legal token, log a disclosure through the form, see it listed and the
ledger verified, see an inline error, open the data map, sign out. The session cookie is not the
token and is HttpOnly and SameSite=Strict. Screenshots go to out/screenshots/."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Iterator

import pytest
import sqlalchemy as sa

from examples.blausen.generate import generate
from registry.events import RawRecord
from registry.ingest import Ingestor
from registry.tokens import create_token

from .conftest import ROOT
from .helpers import live_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = ROOT / "out" / "screenshots"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)")


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'browser.db'}"


@pytest.fixture
def server(declared: sa.Engine, db_url: str) -> Iterator[tuple[str, str]]:
    Ingestor(declared).ingest(RawRecord(value=line) for line, _ in generate(2000, seed=8, poison_per_reason=1))
    token = create_token(declared, "legal", "lena").token
    with live_server(db_url) as base:
        yield base, token


def test_legal_user_logs_a_disclosure_and_opens_the_map(server: tuple[str, str]) -> None:
    from playwright.sync_api import sync_playwright

    base, token = server
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{base}/disclosures")
        assert "/login" in page.url
        page.fill("input[name=token]", token)
        page.click("button")
        page.wait_for_url(f"{base}/disclosures")
        assert "lena (legal)" in page.inner_text("nav")
        (cookie,) = page.context.cookies()
        assert (cookie["name"], cookie["httpOnly"], cookie["sameSite"]) == ("registry_session", True, "Strict")
        assert cookie["value"] != token and token not in cookie["value"]
        assert page.evaluate("document.cookie") == ""  # out of reach of scripts
        # the API does not take the session: the browser's own fetch with its cookie is refused
        assert page.evaluate("fetch('/api/drift', {credentials: 'include'}).then(r => r.status)") == 401

        page.fill("input[name=request_id]", "SW-2026-7")
        page.fill("input[name=authority]", "Travis County Sheriff")
        page.fill("input[name=authority_country]", "US")
        page.select_option("select[name=instrument]", "search_warrant")
        page.fill("input[name=received_at]", "2026-04-02T10:00:00Z")
        page.select_option("select[name=notice]", "delayed")
        page.click("form.grid button")
        assert "notice_due: is required" in page.inner_text("#form-error")
        page.screenshot(path=str(SHOTS / "disclosure-error.png"), full_page=True)

        page.fill("input[name=notice_due]", "2026-07-01")
        page.click("form.grid button")
        page.wait_for_selector("text=Logged SW-2026-7 version 1")
        assert "SW-2026-7" in page.inner_text("table")
        assert page.inner_text("#verify") == "verify: ok (1 entries)"
        page.screenshot(path=str(SHOTS / "disclosures.png"), full_page=True)

        page.goto(f"{base}/datamap")
        assert page.locator("svg").count() >= 1
        assert "facebook-pixel" in (page.locator("svg").first.text_content() or "")
        page.screenshot(path=str(SHOTS / "datamap.png"), full_page=True)
        page.goto(f"{base}/")
        page.screenshot(path=str(SHOTS / "dashboard.png"), full_page=True)

        page.click("#logout")
        page.wait_for_url(f"{base}/login")
        assert [c["name"] for c in page.context.cookies() if c["name"] == "registry_session"] == []
        page.goto(f"{base}/disclosures")
        assert "/login" in page.url
        browser.close()
