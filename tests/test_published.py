"""Published recipients and change notices (issue 24, contract §8): the list ``--as-of`` each
version's dates, the change notices and the ``before_notice`` counts against brute-force answers
computed here from the test's own manifests and events, over effective-dated versions announced
ahead, back-dated, at short notice, and a recipient removed then re-added; the Atom feed as a
feed reader sees it; ``serve --public`` publishing exactly three paths."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import feedparser
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from registry.exceptions import InputError
from registry.answers.drift import drift
from registry.answers.notices import changes, published_list
from registry.answers.overview import overview
from registry.cli import app as cli
from registry.intake.ingest import Ingestor
from registry.model.declarations import declare
from registry.model.manifest import manifest_from_document
from registry.model.taxonomy import covers
from registry.model.times import format_time
from registry.reports import ropa_document
from registry.reports.published import changes_document
from registry.web import create_app
from registry.web.tokens import create_token

from .helpers import live_server, record, transfer

UTC = timezone.utc
CHROMIUM = "/usr/bin/chromium"


def t(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


CONTROLLER = {"name": "Acme Cloud GmbH", "country": "DE", "contact": "privacy@acme.example"}
GA = {"key": "ga", "name": "Google Analytics", "service": "analytics", "role": "processor", "country": "US", "transfer_mechanism": "adequacy"}
MC = {"key": "mc", "name": "Mailchimp", "service": "newsletter", "role": "processor", "country": "US", "transfer_mechanism": "scc"}
NEW = {"key": "newco", "name": "NewCo Hosting", "service": "hosting", "role": "sub_processor", "country": "DE", "processor_of": "ga"}
COOKIES = {"key": "analytics", "name": "Analytics", "purposes": ["analytics.reporting"], "legal_basis": "consent",
           "data_categories": ["user.device.cookie_id"], "recipients": ["ga", "mc"]}
EMAIL = {"key": "mailing", "name": "Mailing", "purposes": ["analytics.reporting"], "legal_basis": "consent",
         "data_categories": ["user.contact.email"], "recipients": ["mc"]}


def _manifest(recipients: list[dict[str, Any]], activities: list[dict[str, Any]]) -> dict[str, Any]:
    return {"controller": CONTROLLER, "recipients": recipients, "activities": activities}


# (manifest, declared_at, effective_from), declared in this order; notice period 30 days
VERSIONS = [
    (_manifest([GA, MC], [COOKIES]), t("2026-01-01"), t("2026-01-01")),                      # 1 baseline
    (_manifest([GA, MC, NEW], [COOKIES]), t("2026-02-01"), t("2026-03-03")),                 # 2 newco announced 30 days ahead
    (_manifest([{**GA, "country": "IE", "transfer_mechanism": None}, MC, NEW], [COOKIES, EMAIL]),
     t("2026-03-10"), t("2026-03-15")),                                                    # 3 short notice: ga → IE, mc gets email
    (_manifest([{**GA, "country": "IE", "transfer_mechanism": None}, MC], [COOKIES, EMAIL]),
     t("2026-04-01"), t("2026-04-01")),                                                    # 4 newco removed
    (_manifest([{**GA, "country": "IE", "transfer_mechanism": None}, MC, NEW], [COOKIES, EMAIL]),
     t("2026-05-20"), t("2026-05-01")),                                                    # 5 newco re-added, back-dated
]


def _events() -> list[dict[str, Any]]:
    """Events to each recipient on both sides of every date that matters, some with a destination."""
    out = []
    days = [t("2026-01-10") + timedelta(days=3 * i, hours=i % 24, minutes=7 * i % 60) for i in range(60)]
    for i, moment in enumerate(days):
        stamp = format_time(moment)
        out.append(transfer(f"n-{i}", stamp, recipient="newco"))
        out.append(transfer(f"g-{i}", stamp, recipient="ga", **({"destination_country": "IE"} if i % 3 == 0 else {})))
        out.append(transfer(f"m-{i}", stamp, recipient="mc",
                            data_categories=["user.contact.email"] if i % 2 else ["user.device.cookie_id"]))
    return out


@pytest.fixture
def scenario(engine: sa.Engine) -> tuple[sa.Engine, list[dict[str, Any]]]:
    for document, declared_at, effective_from in VERSIONS:
        declare(engine, manifest_from_document(document), effective_from, declared_at)
    events = _events()
    counts = Ingestor(engine).ingest(record(e) for e in events)
    assert counts.ingested == len(events)
    return engine, events


def _time(e: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(e["time"].replace("Z", "+00:00"))


# --- the brute-force answers, from VERSIONS and the events alone -----------------------------

def _effect_order() -> list[tuple[int, dict[str, Any], datetime, datetime]]:
    return sorted([(i + 1, m, d, e) for i, (m, d, e) in enumerate(VERSIONS)], key=lambda v: (v[3], v[0]))


def _categories(m: dict[str, Any], key: str) -> list[str]:
    chain, parent = {key}, next(r for r in m["recipients"] if r["key"] == key).get("processor_of")
    while parent:
        chain.add(parent)
        parent = next(r for r in m["recipients"] if r["key"] == parent).get("processor_of")
    return sorted({c for a in m["activities"] if chain & set(a["recipients"]) for c in a["data_categories"]})


def _expected_list(moment: datetime, events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    known = [v for v in _effect_order() if v[2] <= moment]
    in_force = [v for v in known if v[3] <= moment]
    rows = {}
    if in_force:
        for r in in_force[-1][1]["recipients"]:
            since = in_force[-1][3]
            for v in reversed(in_force):
                if not any(x["key"] == r["key"] for x in v[1]["recipients"]):
                    break
                since = v[3]
            rows[r["key"]] = (r["key"], r["country"], _categories(in_force[-1][1], r["key"]), format_time(since), "in_force")
    for v in known:
        if v[3] > moment:
            for r in v[1]["recipients"]:
                rows.setdefault(r["key"], (r["key"], r["country"], _categories(v[1], r["key"]), format_time(v[3]), "announced"))
    out = []
    for key in sorted(rows):
        times = [_time(e) for e in events if e["data"]["recipient"] == key and _time(e) < moment]
        out.append((*rows[key], format_time(min(times)) if times else None, format_time(max(times)) if times else None))
    return out


D30 = timedelta(days=30)
# the notices, read off VERSIONS by hand: (recipient, change, fields, announced, effective, short)
EXPECTED_CHANGES = [
    ("newco", "added", {"country": [None, "DE"], "transfer_mechanism": [None, None], "role": [None, "sub_processor"],
                        "categories": [None, ["user.device.cookie_id"]]}, t("2026-02-01"), t("2026-03-03"), False),
    ("ga", "changed", {"country": ["US", "IE"], "transfer_mechanism": ["adequacy", None]}, t("2026-03-10"), t("2026-03-15"), True),
    ("mc", "changed", {"categories": [["user.device.cookie_id"], ["user.contact.email", "user.device.cookie_id"]]},
     t("2026-03-10"), t("2026-03-15"), True),
    ("newco", "removed", {"country": ["DE", None], "transfer_mechanism": [None, None], "role": ["sub_processor", None],
                          "categories": [["user.device.cookie_id"], None]}, t("2026-04-01"), t("2026-04-01"), False),  # never short
    ("newco", "added", {"country": [None, "DE"], "transfer_mechanism": [None, None], "role": [None, "sub_processor"],
                        "categories": [None, ["user.device.cookie_id"]]}, t("2026-05-20"), t("2026-05-01"), True),
]


Spec = tuple[dict[str, Any], datetime, datetime]  # (manifest document, declared_at, effective_from)


def _state(m: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    r = next((r for r in m["recipients"] if r["key"] == key), None) if m else None
    if r is None:
        return None
    return {"country": r["country"], "transfer_mechanism": r.get("transfer_mechanism"), "role": r["role"],
            "categories": _categories(m, key)}  # type: ignore[arg-type]


def _expected_notices(specs: list[Spec]) -> list[tuple[str, int, str, dict[str, Any], datetime, datetime]]:
    """Each version against what was in force at its effective_from among those declared before it."""
    out = []
    for v in range(1, len(specs)):
        m, declared, effective = specs[v]
        before = None
        for u in range(v):  # the latest effective_from <= effective; ties: the later declaration
            if specs[u][2] <= effective and (before is None or specs[u][2] >= specs[before][2]):
                before = u
        old_m = specs[before][0] if before is not None else None
        keys = {r["key"] for r in m["recipients"]} | ({r["key"] for r in old_m["recipients"]} if old_m else set())
        for key in sorted(keys):
            old, new = _state(old_m, key), _state(m, key)
            if old is None:
                out.append((key, v + 1, "added", {f: [None, x] for f, x in new.items()}, declared, effective))  # type: ignore[union-attr]
            elif new is None:
                out.append((key, v + 1, "removed", {f: [x, None] for f, x in old.items()}, declared, effective))
            elif old != new:
                out.append((key, v + 1, "changed", {f: [old[f], new[f]] for f in old if old[f] != new[f]}, declared, effective))
    return out


def _expected_late(events: list[dict[str, Any]], since: datetime | None = None, until: datetime | None = None,
                   specs: list[Spec] | None = None, as_of: datetime | None = None) -> dict[str, int]:
    """Which notices (by label) each event went before, straight from the definition in §8 and
    the README: before the notice ran out (max(effective_from, announced + 30 days)), while no
    version in force between the event and the notice's effective_from listed what it announces
    (the recipient; the new country; a category covering the event's new category), and, for a
    change, while every such version listed the recipient. An event naming no country goes to
    the recipient's declared country: it counts for a country change once that is in force."""
    specs = [s for s in (specs or VERSIONS) if as_of is None or s[1] <= as_of]
    order = sorted(range(len(specs)), key=lambda i: (specs[i][2], i))
    counts: dict[str, int] = {}
    for key, number, change, fields, declared, effective in _expected_notices(specs):
        if change == "removed" or (change == "changed" and not {"country", "categories"} & set(fields)):
            continue
        clear = max(effective, declared + D30)
        position = order.index(number - 1)
        for e in events:
            when, d = _time(e), e["data"]
            if d["recipient"] != key or when >= clear or (since and when < since) or (until and when >= until) \
                    or (as_of and when >= as_of):
                continue
            # the versions in force at some instant of [when, effective), before this one in effect order
            between = [specs[order[j]][0] for j in range(position)
                       if (j + 1 == len(order) or specs[order[j + 1]][2] > when) and specs[order[j]][2] < effective]
            if change == "added":
                late = not any(_state(m, key) for m in between)
            else:
                late = False
                states = [_state(m, key) for m in between]
                if all(states):  # an unbroken listing
                    if "country" in fields:
                        new_country = fields["country"][1]
                        named = d.get("destination_country")
                        if (named == new_country or (not named and when >= effective)) and \
                                not any(s["country"] == new_country for s in states):  # type: ignore[index]
                            late = True
                    if "categories" in fields:
                        old, new = fields["categories"]
                        for c in d["data_categories"]:
                            if any(covers(n, c) for n in new) and not any(covers(o, c) for o in old) and \
                                    not any(covers(x, c) for s in states for x in s["categories"]):  # type: ignore[index]
                                late = True
            if late:
                label = f"{key}-{number}"
                counts[label] = counts.get(label, 0) + 1
    return counts


def _label(detail: str, recipient: str) -> str:
    return f"{recipient}-{detail.split('manifest version ')[1].split(' ')[0]}"


# --- the tests -------------------------------------------------------------------------------

def test_change_notices_equal_the_ones_read_off_the_versions(scenario: tuple[sa.Engine, list[dict[str, Any]]]) -> None:
    engine, _ = scenario
    got = [(c.recipient, c.change, c.fields, c.announced_at, c.effective_from, c.objection_deadline, c.short_notice)
           for c in changes(engine)]
    want = [(r, c, f, format_time(a), format_time(e), format_time(a + D30), s) for r, c, f, a, e, s in EXPECTED_CHANGES]
    assert got == want
    assert [c.recipient for c in changes(engine, t("2026-03-10"))] == ["ga", "mc", "newco", "newco"]


@pytest.mark.parametrize("which", ["declared", "effective", "between"])
def test_the_list_as_of_each_versions_dates_equals_brute_force(scenario: tuple[sa.Engine, list[dict[str, Any]]], which: str) -> None:
    engine, events = scenario
    moments = {d for _, d, _ in VERSIONS} if which == "declared" else {e for _, _, e in VERSIONS} if which == "effective" \
        else {e - timedelta(seconds=1) for _, _, e in VERSIONS} | {t("2026-12-01")}
    for moment in sorted(moments):
        if moment < min(d for _, d, _ in VERSIONS):
            # review of issue 21: before anything was declared nothing was published, which is
            # not an empty list
            with pytest.raises(InputError, match="nothing was published then"):
                published_list(engine, moment)
            continue
        got = [(r.recipient, r.country, r.categories, r.in_force_since, r.status, r.first_seen, r.last_seen)
               for r in published_list(engine, moment)]
        assert got == _expected_list(moment, events), moment
    statuses = {r.recipient: r.status for r in published_list(engine, t("2026-02-15"))}
    assert statuses == {"ga": "in_force", "mc": "in_force", "newco": "announced"}


def test_before_notice_counts_equal_brute_force(scenario: tuple[sa.Engine, list[dict[str, Any]]]) -> None:
    engine, events = scenario
    for since, until in [(None, None), (t("2026-03-01T10:30:00"), t("2026-05-10T13:45:00")), (t("2026-04-05"), None)]:
        rows = [r for r in drift(engine, since, until) if r.kind == "before_notice"]
        assert {_label(r.detail, r.recipient): r.events for r in rows} == _expected_late(events, since, until), (since, until)
    # as of a date: only the versions declared by then, only the events before it
    as_of = t("2026-03-12")
    rows = [r for r in drift(engine, as_of=as_of) if r.kind == "before_notice"]
    early = [e for e in events if _time(e) < as_of]
    want = {k: v for k, v in _expected_late(early).items() if k != "newco-5"}
    assert {_label(r.detail, r.recipient): r.events for r in rows} == want
    first = next(r for r in rows if r.recipient == "newco")
    assert first.first_seen == format_time(min(_time(e) for e in early if e["data"]["recipient"] == "newco"))


def test_before_notice_shows_in_the_ropa_the_dashboard_and_the_drift_page(scenario: tuple[sa.Engine, list[dict[str, Any]]],
                                                                        db_url: str) -> None:
    import orjson

    engine, events = scenario
    want = _expected_late(events)
    undeclared = orjson.loads(ropa_document(engine, "json"))["undeclared"]
    assert {_label(r["detail"], r["recipient"]): r["events"] for r in undeclared if r["kind"] == "before_notice"} == want
    assert b"before_notice" in ropa_document(engine, "md")
    assert overview(engine).drift["before_notice"] == len(want)
    client = TestClient(create_app(db_url))
    from .test_web import sign_in

    assert sign_in(client, create_token(engine, "auditor", "ada").token).status_code == 303
    page = client.get("/drift").text
    assert 'id="before_notice"' in page and "Data sent before the notice ran out" in page and "What to do" in page
    dashboard = client.get("/").text
    assert '<a href="/drift#before_notice">Data sent before the notice ran out</a></td><td class="num">' + str(len(want)) in dashboard


def test_the_atom_feed_parses_and_keeps_its_entry_ids(scenario: tuple[sa.Engine, list[dict[str, Any]]]) -> None:
    engine, _ = scenario
    first = changes_document(engine, "atom", self_url="http://x/public/recipients.atom")
    again = changes_document(engine, "atom", self_url="http://x/public/recipients.atom")
    assert first == again
    feed = feedparser.parse(first)
    assert not feed.bozo, feed.get("bozo_exception")
    assert feed.feed.title.startswith("Changes to the recipients of personal data")
    ids = [e.id for e in feed.entries]
    assert len(ids) == len(set(ids)) == len(EXPECTED_CHANGES)
    assert feed.entries[0].updated_parsed[:3] == (2026, 5, 20)  # newest first
    assert any("short notice" in e.content[0].value for e in feed.entries)
    # a later declaration adds entries and leaves the earlier ones' ids alone
    later = VERSIONS[-1][0] | {"recipients": [*VERSIONS[-1][0]["recipients"], {**MC, "key": "mc2", "name": "Mailchimp EU"}]}
    declare(engine, manifest_from_document(later), t("2026-07-15"), t("2026-06-15"))
    after = [e.id for e in feedparser.parse(changes_document(engine, "atom")).entries]
    assert set(ids) < set(after) and len(after) == len(ids) + 1


def test_the_cli_group_keeps_the_chains_and_answers_list_and_changes(scenario: tuple[sa.Engine, list[dict[str, Any]]],
                                                                    db_url: str) -> None:
    import orjson

    runner = CliRunner()
    chains = runner.invoke(cli, ["--db", db_url, "--json", "subprocessors"])
    assert chains.exit_code == 0, chains.output
    assert orjson.loads(chains.stdout) == [{"recipient": "newco", "processor_of": "ga", "chain": ["ga", "newco"], "country": "DE"}]
    listed = runner.invoke(cli, ["--db", db_url, "subprocessors", "list", "--format", "json", "--as-of", "2026-02-15"])
    assert [r["status"] for r in orjson.loads(listed.stdout)] == ["in_force", "in_force", "announced"]
    csv = runner.invoke(cli, ["--db", db_url, "subprocessors", "list", "--format", "csv"])
    assert csv.stdout.splitlines()[0].startswith("recipient,name,service,role,processor_of,country,transfer_mechanism")
    changed = runner.invoke(cli, ["--db", db_url, "--json", "subprocessors", "changes", "--since", "2026-04-01"])
    assert [(c["recipient"], c["change"]) for c in orjson.loads(changed.stdout)] == [("newco", "removed"), ("newco", "added")]
    atom = runner.invoke(cli, ["--db", db_url, "subprocessors", "changes", "--format", "atom"])
    assert len(feedparser.parse(atom.stdout).entries) == len(EXPECTED_CHANGES)
    bad = runner.invoke(cli, ["--db", db_url, "subprocessors", "changes", "--format", "rss"])
    assert bad.exit_code == 2 and "--format" in bad.stderr


def _routes(routes: list[Any]) -> list[Any]:
    """Every route, those of included routers too (FastAPI keeps them behind the router)."""
    out = []
    for route in routes:
        inner = getattr(route, "original_router", None)
        out += _routes(inner.routes) if inner is not None else [route]
    return out


def _open_paths(client: TestClient) -> set[tuple[str, str]]:
    """Every route of the app and a few paths no route names, requested without a token with
    every method: the (method, path) that answer 2xx, or redirect to a 2xx other than sign-in."""
    opened = set()
    routes = _routes(client.app.routes)  # type: ignore[attr-defined]
    assert len(routes) > 30  # the walk reaches the API and the pages
    paths = {getattr(route, "path", "") for route in routes} | {
        "/openapi.json", "/docs", "/redoc", "/docs/oauth2-redirect", "/public", "/public/", "/public/recipients.csv",
        "/public/recipients/", "/public/../api/drift", "/static/x.css"}
    for path in sorted(paths):
        concrete = path.replace("{", "").replace("}", "").replace(":path", "")
        for method in ("GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE", "PATCH"):
            answer = client.request(method, concrete, follow_redirects=False)
            if 300 <= answer.status_code < 400:  # a redirect opens what it leads to
                answer = client.request(method, answer.headers["location"], follow_redirects=True)
            if 200 <= answer.status_code < 300 and not str(answer.url).split("?")[0].endswith("/login"):
                opened.add((method, path))
    return opened


# everything a stranger may reach: the three public routes, /metrics (contract §3) and the sign-in page
PUBLIC_ALLOWED = {(m, p) for p in ("/public/recipients", "/public/recipients.json", "/public/recipients.atom")
                  for m in ("GET", "HEAD")} | {("GET", "/metrics"), ("GET", "/login"), ("POST", "/login")}


def test_serve_public_opens_exactly_the_three_paths(scenario: tuple[sa.Engine, list[dict[str, Any]]], db_url: str) -> None:
    private, public = TestClient(create_app(db_url)), TestClient(create_app(db_url, public=True))
    for path in ("/public/recipients", "/public/recipients.json", "/public/recipients.atom"):
        assert private.get(path).status_code == 404
    assert _open_paths(public) <= PUBLIC_ALLOWED, _open_paths(public) - PUBLIC_ALLOWED
    assert {(m, p) for m, p in PUBLIC_ALLOWED if p.startswith("/public/")} <= _open_paths(public)
    page = public.get("/public/recipients")
    assert "NewCo Hosting" in page.text and "Objections until" in page.text and 'type="application/atom+xml"' in page.text
    rows = public.get("/public/recipients.json").json()
    assert [r["recipient"] for r in rows] == ["ga", "mc", "newco"] and "first_seen" not in rows[0]
    feed = feedparser.parse(public.get("/public/recipients.atom").text)
    assert not feed.bozo


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_the_public_page_passes_axe(scenario: tuple[sa.Engine, list[dict[str, Any]]], db_url: str) -> None:
    from playwright.sync_api import sync_playwright

    from .accessibility import axe_source, serious_violations

    if not db_url.startswith("sqlite"):
        pytest.skip("one browser run is enough: SQLite")
    source = axe_source()
    with live_server(db_url, public=True) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page()
        for width in (1280, 390):
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(f"{base}/public/recipients")
            assert serious_violations(page, source) == [], width
            assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 1, width
        page.emulate_media(media="print")
        assert page.locator(".noprint").first.is_hidden()
        browser.close()


def test_the_api_answers_the_list_and_the_changes_with_a_token(scenario: tuple[sa.Engine, list[dict[str, Any]]], db_url: str) -> None:
    engine, _ = scenario
    client = TestClient(create_app(db_url))
    headers = {"Authorization": f"Bearer {create_token(engine, 'auditor', 'ada').token}"}
    assert client.get("/api/subprocessors/list").status_code == 401
    listed = client.get("/api/subprocessors/list", params={"as_of": "2026-02-15"}, headers=headers).json()
    assert [(r["recipient"], r["status"]) for r in listed] == [("ga", "in_force"), ("mc", "in_force"), ("newco", "announced")]
    assert client.get("/api/subprocessors/changes", params={"since": "2026-04-01"}, headers=headers).json() == \
        [c.model_dump() for c in changes(engine, t("2026-04-01"))]
    assert client.get("/api/subprocessors/changes", params={"since": "2026-02-30"}, headers=headers).status_code == 422


def test_notice_period_days_sets_the_deadline_and_a_bad_one_is_refused(engine: sa.Engine, tmp_path: Path) -> None:
    import yaml

    declare(engine, manifest_from_document(_manifest([GA], [{**COOKIES, "recipients": ["ga"]}])), t("2026-01-01"), t("2026-01-01"))
    ten_days = _manifest([GA, MC], [COOKIES]) | {"notice_period_days": 10}
    declare(engine, manifest_from_document(ten_days), t("2026-01-20"), t("2026-01-05"))
    (notice,) = changes(engine)
    assert (notice.recipient, notice.objection_deadline, notice.short_notice) == ("mc", "2026-01-15T00:00:00Z", False)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(ten_days | {"notice_period_days": -3}))
    result = CliRunner().invoke(cli, ["--db", f"sqlite:///{tmp_path / 'x.db'}", "declare", str(bad)])
    assert result.exit_code == 2 and "notice_period_days" in result.stderr and "Traceback" not in result.output


def _entries(atom: str) -> dict[str, str]:
    import re

    return {re.search(r"<id>(.*?)</id>", e).group(1): e for e in re.findall(r"<entry>.*?</entry>", atom, re.S)}  # type: ignore[union-attr]


@pytest.mark.parametrize("effective", [t("2025-12-01"), t("2026-03-12")], ids=["before-all", "between"])
def test_a_back_dated_declaration_never_rewrites_a_published_notice(scenario: tuple[sa.Engine, list[dict[str, Any]]],
                                                                    effective: datetime) -> None:
    engine, events = scenario
    rows, feed = [c.model_dump() for c in changes(engine)], _entries(changes_document(engine, "atom"))
    moved = {**MC, "country": "FR", "transfer_mechanism": None}
    late = _manifest([GA, moved], [COOKIES])
    declare(engine, manifest_from_document(late), effective, t("2026-07-01"))
    after_rows, after_feed = [c.model_dump() for c in changes(engine)], _entries(changes_document(engine, "atom"))
    assert after_rows[:len(rows)] == rows and len(after_rows) > len(rows)
    assert {k: after_feed[k] for k in feed} == feed  # byte-identical: same id, same updated, same text
    specs = [*VERSIONS, (late, t("2026-07-01"), effective)]
    want = [(r, c, f, format_time(a), format_time(e)) for r, _, c, f, a, e in _expected_notices(specs)]
    assert [(c["recipient"], c["change"], c["fields"], c["announced_at"], c["effective_from"]) for c in after_rows] == want
    got = {_label(r.detail, r.recipient): r.events for r in drift(engine) if r.kind == "before_notice"}
    assert got == _expected_late(events, specs=specs)


# the reviewer's switch-back: a leaves US for IE and comes back; m stops receiving email and gets it again
SB_A = {"key": "a", "name": "A", "service": "analytics", "role": "processor", "country": "US", "transfer_mechanism": "adequacy"}
SB_M = {"key": "m", "name": "M", "service": "newsletter", "role": "processor", "country": "DE"}


def _sb(country: str, email: bool) -> dict[str, Any]:
    acts = [{**COOKIES, "key": "x", "recipients": ["a", "m"]}] + ([{**EMAIL, "key": "y", "recipients": ["m"]}] if email else [])
    return _manifest([{**SB_A, "country": country}, SB_M], acts)


SWITCHBACK: list[Spec] = [(_sb("US", True), t("2026-01-01"), t("2026-01-01")),
                          (_sb("IE", False), t("2026-03-05"), t("2026-02-01")),
                          (_sb("US", True), t("2026-05-15"), t("2026-04-01"))]


def test_before_notice_after_a_switch_back_counts_only_since_the_old_value_stopped(engine: sa.Engine) -> None:
    for document, declared_at, effective_from in SWITCHBACK:
        declare(engine, manifest_from_document(document), effective_from, declared_at)
    events = []
    for i, day in enumerate(["2026-01-10", "2026-02-15", "2026-03-20", "2026-04-10", "2026-06-20"]):
        events += [transfer(f"a{i}", f"{day}T12:00:00Z", recipient="a", destination_country="US"),
                   transfer(f"i{i}", f"{day}T12:00:00Z", recipient="a", destination_country="IE"),
                   transfer(f"n{i}", f"{day}T12:00:00Z", recipient="a"),
                   transfer(f"m{i}", f"{day}T12:00:00Z", recipient="m", data_categories=["user.contact.email"])]
    Ingestor(engine).ingest(record(e) for e in events)
    got = {_label(r.detail, r.recipient): r.events for r in drift(engine) if r.kind == "before_notice"}
    want = _expected_late(events, specs=SWITCHBACK)
    assert got == want
    # by hand: US and email were published until 02-01, so 01-10 is not before notice; v3 runs out 06-14
    assert want["a-3"] == 3 + 1 and want["m-3"] == 3  # US on 02-15, 03-20, 04-10; no country on 04-10


def test_the_list_as_of_a_date_shows_only_what_was_declared_by_then(scenario: tuple[sa.Engine, list[dict[str, Any]]],
                                                                    db_url: str) -> None:
    engine, _ = scenario
    renamed = VERSIONS[-1][0] | {"controller": {**CONTROLLER, "name": "Renamed Corp"}, "notice_period_days": 14,
                                 "recipients": [*VERSIONS[-1][0]["recipients"], {**MC, "key": "late", "name": "Later Ltd"}]}
    declare(engine, manifest_from_document(renamed), t("2026-08-01"), t("2026-07-01"))
    runner = CliRunner()
    for fmt in ("md", "html"):
        out = runner.invoke(cli, ["--db", db_url, "subprocessors", "list", "--as-of", "2026-03-01", "--format", fmt])
        assert out.exit_code == 0, out.output
        assert "Renamed Corp" not in out.stdout and "Later Ltd" not in out.stdout and CONTROLLER["name"] in out.stdout
        assert "Google Analytics: changed" not in out.stdout  # announced 03-10
        assert "NewCo Hosting" in out.stdout
        if fmt == "html":
            assert "30 days before" in out.stdout
    now = runner.invoke(cli, ["--db", db_url, "subprocessors", "list", "--format", "html"]).stdout
    assert "Renamed Corp" in now and "14 days before" in now and "Later Ltd" in now
    early = runner.invoke(cli, ["--db", db_url, "subprocessors", "list", "--as-of", "2025-06-01", "--format", "md"])
    assert early.exit_code == 2 and "--as-of" in early.stderr


@pytest.mark.parametrize("where,value", [("controller.name", "Acme\x0bCorp"), ("recipients[0].name", "Goo\x00gle"),
                                         ("recipients[0].contract", "DPA\n2018"), ("activities[0].name", "Ana\u0085lytics")])
def test_declare_refuses_control_characters_naming_the_field(tmp_path: Path, where: str, value: str) -> None:
    import json

    document = _manifest([GA, MC], [COOKIES])
    document = json.loads(json.dumps(document))
    if where == "controller.name":
        document["controller"]["name"] = value
    else:
        part, field = where.split(".")
        document[part.split("[")[0]][0][field] = value
    path = tmp_path / "m.json"
    path.write_text(json.dumps(document))
    result = CliRunner().invoke(cli, ["--db", f"sqlite:///{tmp_path / 'x.db'}", "declare", str(path)])
    assert result.exit_code == 2 and where in result.stderr and "control character" in result.stderr, result.output
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


def test_the_feed_survives_a_control_character_already_stored(engine: sa.Engine, db_url: str) -> None:
    from registry.model.manifest import Manifest

    for document, declared_at, effective_from in VERSIONS[:2]:
        m = manifest_from_document(document)
        # a store declared before declare refused them: bypass the validator
        m = Manifest.model_validate(m.model_dump() | {"controller": {**CONTROLLER, "name": "Acme\x0bCorp\x1f"}})
        declare(engine, m, effective_from, declared_at)
    atom = CliRunner().invoke(cli, ["--db", db_url, "subprocessors", "changes", "--format", "atom"])
    assert atom.exit_code == 0, atom.output
    feed = feedparser.parse(atom.stdout)
    assert not feed.bozo and feed.feed.title.endswith("AcmeCorp")
    public = TestClient(create_app(db_url, public=True))
    assert public.get("/public/recipients.atom").status_code == 200


@pytest.mark.parametrize("option", [["--as-of", "2026-02-15"], ["--json"]])
def test_group_options_before_a_subcommand_are_refused_not_dropped(scenario: tuple[sa.Engine, list[dict[str, Any]]],
                                                                    db_url: str, option: list[str]) -> None:
    result = CliRunner().invoke(cli, ["--db", db_url, "subprocessors", *option, "list", "--format", "json"])
    assert result.exit_code == 2 and option[0] in result.stderr and "subprocessors list" in result.stderr, result.output
    assert result.stdout == "" and len(result.stderr.strip().splitlines()) == 1
    # after the subcommand it works
    ok = CliRunner().invoke(cli, ["--db", db_url, "subprocessors", "list", *option])
    assert ok.exit_code == 0, ok.output


def test_markdown_escapes_manifest_text_and_csv_neutralises_formulas(engine: sa.Engine, db_url: str) -> None:
    import csv
    import io
    import re

    evil = {**MC, "name": "Evil | <script>alert(1)</script> \\ co"}
    formula = {**GA, "name": "=HYPERLINK(\"http://x\")"}
    sub = {**NEW, "name": "+NewCo"}
    declare(engine, manifest_from_document(_manifest([formula, evil, sub], [COOKIES])), t("2026-01-01"), t("2026-01-01"))
    runner = CliRunner()
    md = runner.invoke(cli, ["--db", db_url, "subprocessors", "list", "--format", "md"]).stdout
    assert "<script>" not in md and "&lt;script&gt;" in md
    table = [line for line in md.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(table) == 4
    for line in table:  # every row has its 8 cells: no pipe from a name splits one
        assert len(re.findall(r"(?<!\\)\|", line.replace("\\\\", ""))) == 9, line
    evil_row = next(line for line in table if "Evil" in line)
    assert "Evil \\| &lt;script&gt;alert(1)&lt;/script&gt; \\\\ co" in evil_row
    html = runner.invoke(cli, ["--db", db_url, "subprocessors", "list", "--format", "html"]).stdout
    newco_md = next(line for line in table if "NewCo" in line)
    # the same wording as the page: EEA needs no safeguard, a sub-processor works for its processor's name
    assert "none needed (EEA)" in newco_md and "none needed (EEA)" in html
    assert "sub processor for =HYPERLINK" in newco_md and "sub processor for =HYPERLINK" in html.replace("&#34;", '"')
    rows = list(csv.DictReader(io.StringIO(runner.invoke(cli, ["--db", db_url, "subprocessors", "list", "--format", "csv"]).stdout)))
    names = {r["recipient"]: r["name"] for r in rows}
    assert names["ga"] == "'=HYPERLINK(\"http://x\")" and names["newco"] == "'+NewCo" and names["mc"].startswith("Evil")


def test_public_links_never_come_from_the_host_header(scenario: tuple[sa.Engine, list[dict[str, Any]]], db_url: str,
                                                      tmp_path: Path) -> None:
    public = TestClient(create_app(db_url, public=True))
    evil = {"Host": "evil.example"}
    page, atom = public.get("/public/recipients", headers=evil).text, public.get("/public/recipients.atom", headers=evil).text
    assert "evil.example" not in page and "evil.example" not in atom and "testserver" not in page + atom
    assert 'href="recipients.atom"' in page and 'href="recipients.json"' in page
    assert 'rel="self"' not in atom  # no configured address: no self link
    configured = TestClient(create_app(db_url, public=True, public_url="https://privacy.acme.example/"))
    feed = feedparser.parse(configured.get("/public/recipients.atom", headers=evil).text)
    assert not feed.bozo
    assert {(link.rel, link.href) for link in feed.feed.links} == {
        ("self", "https://privacy.acme.example/public/recipients.atom"), ("alternate", "https://privacy.acme.example/public/recipients")}
    bad = CliRunner().invoke(cli, ["--db", db_url, "serve", "--public", "--public-url", "privacy.acme.example"])
    assert bad.exit_code == 2 and "--public-url" in bad.stderr
    env = CliRunner().invoke(cli, ["--db", db_url, "serve", "--public"], env={"REGISTRY_PUBLIC_URL": "ftp://x"})
    assert env.exit_code == 2 and "--public-url" in env.stderr


def test_public_routes_answer_head_with_an_etag_and_304(scenario: tuple[sa.Engine, list[dict[str, Any]]], db_url: str) -> None:
    import hashlib

    public = TestClient(create_app(db_url, public=True))
    for path in ("/public/recipients", "/public/recipients.json", "/public/recipients.atom"):
        got = public.get(path)
        tag = got.headers["etag"]
        assert tag == '"' + hashlib.sha256(got.content).hexdigest()[:32] + '"'
        head = public.head(path)
        assert head.status_code == 200 and head.headers["etag"] == tag and head.content == b""
        again = public.get(path, headers={"If-None-Match": f'"other", {tag}'})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
        assert public.get(path, headers={"If-None-Match": '"other"'}).status_code == 200


def test_public_errors_are_bare_and_agree_without_a_manifest(engine: sa.Engine, db_url: str) -> None:
    public = TestClient(create_app(db_url, public=True))
    answers = {p: public.get(p) for p in ("/public/recipients", "/public/recipients.json", "/public/recipients.atom")}
    assert {a.status_code for a in answers.values()} == {404}
    page = answers["/public/recipients"]
    assert page.headers["content-type"].startswith("text/html") and "<nav" not in page.text and "registry " not in page.text
    assert "/drift" not in page.text and "Sign" not in page.text and "declare" not in page.text
    assert answers["/public/recipients.json"].json() == {"detail": "Nothing is published here yet."}
    feed = answers["/public/recipients.atom"]
    assert feed.headers["content-type"].startswith("text/plain") and "declare" not in feed.text
    for a in answers.values():
        assert a.headers["cache-control"] == "no-store"
    for path in ("/public/recipients.csv", "/public", "/public/"):
        unknown = public.get(path, follow_redirects=False)
        assert unknown.status_code == 404 and "<nav" not in unknown.text and "/drift" not in unknown.text, path


def test_the_demo_writes_every_file_its_published_page_links(scenario: tuple[sa.Engine, list[dict[str, Any]]], tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    import re

    from examples.blausen import demo

    if not db_url.startswith("sqlite"):
        pytest.skip("the files do not depend on the store: SQLite")
    engine, _ = scenario
    monkeypatch.setattr(demo, "DIAGRAMS", tmp_path / "diagrams")
    summary = demo._summary(engine, {}, tmp_path)
    page = (tmp_path / "reports" / "recipients.html").read_text()
    links = set(re.findall(r'href="([^"#:]+)"', page))
    assert {"recipients.atom", "recipients.json"} <= links
    for link in links:
        assert (tmp_path / "reports" / link).is_file(), link
        assert f"reports/{link}" in summary["reports"]
