"""The web service: every API route, each role boundary (401/403), 422 naming the field."""

from __future__ import annotations

import hashlib
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from examples.blausen.generate import generate
from registry.intake.ingest import Ingestor
from registry.model.events import RawRecord
from registry.web import create_app
from registry.web.tokens import create_token

from .conftest import all_text
from .helpers import ref, transfer

ROLES = ("service", "auditor", "legal", "admin")
SNAPSHOT = {"request_id": "WEB-1", "authority": "District Court of Harris County", "authority_country": "US",
            "instrument": "subpoena", "received_at": "2026-03-02T09:00:00Z", "outcome": "pending", "notice": "pending"}


@pytest.fixture
def db_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    """The API is one layer over the store whose tests run on both databases: SQLite suffices here."""
    return f"sqlite:///{tmp_path / 'web.db'}"


@pytest.fixture
def web(declared: sa.Engine, db_url: str) -> tuple[TestClient, dict[str, str]]:
    Ingestor(declared).ingest(RawRecord(value=line) for line, _ in generate(800, seed=2, poison_per_reason=1))
    tokens = {role: create_token(declared, role, f"{role}-user").token for role in ROLES}
    return TestClient(create_app(db_url)), tokens


def call(client: TestClient, method: str, path: str, token: str | None, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if body is not None:
        headers["Content-Type"] = "application/json"
    return client.request(method, path, headers=headers, content=orjson.dumps(body) if body is not None else None)


def _manifest_body() -> dict:
    import yaml

    from .conftest import EXAMPLE_MANIFEST

    return yaml.safe_load(EXAMPLE_MANIFEST.read_text())


READ_ROUTES = ["/api/recipients?category=user.device", "/api/recipients/stripe", f"/api/subjects/{ref('c1')}", "/api/drift",
               "/api/subprocessors", "/api/ropa", "/api/ropa?format=xlsx", "/api/ropa?format=html", "/api/ropa?format=csv",
               "/api/ropa?format=md", "/api/notice", "/api/diagram?format=svg", "/api/disclosures", "/api/disclosures/verify",
               "/api/disclosures/report?year=2026", "/api/dead-letters", "/api/disclosures/head"]


@pytest.mark.parametrize("path", READ_ROUTES)
def test_read_routes_by_role(web: tuple[TestClient, dict[str, str]], path: str) -> None:
    client, tokens = web
    assert call(client, "GET", path, None).status_code == 401
    assert call(client, "GET", path, "drt_wrong").status_code == 401
    assert call(client, "GET", path, tokens["service"]).status_code == 403
    for role in ("auditor", "legal", "admin"):
        assert call(client, "GET", path, tokens[role]).status_code == 200, (role, path)


def test_write_routes_by_role(web: tuple[TestClient, dict[str, str]]) -> None:
    client, tokens = web
    writes = [("/api/disclosures", SNAPSHOT, ("legal", "admin")),
              ("/api/manifests", _manifest_body(), ("admin",)),
              ("/api/events", transfer("w1"), ("service", "admin"))]
    for path, body, allowed in writes:
        assert call(client, "POST", path, None, body).status_code == 401
        for role in ROLES:
            expected = 200 if role in allowed else 403
            assert call(client, "POST", path, tokens[role], body).status_code == expected, (path, role)


def test_shapes_match_the_cli(web: tuple[TestClient, dict[str, str]]) -> None:
    client, tokens = web
    token = tokens["auditor"]
    rows = call(client, "GET", "/api/recipients?category=user.contact&include_subprocessors=true", token).json()
    assert set(rows[0]) == {"recipient", "name", "service", "role", "country", "declared", "via", "categories",
                            "first_seen", "last_seen", "events"}
    assert any(r["via"] == "mandrill" for r in rows)
    assert set(call(client, "GET", "/api/ropa", token).json()) == {"controller", "generated_at", "activities", "undeclared"}
    assert call(client, "GET", "/api/diagram?format=svg", token).text.lstrip().startswith("<?xml")
    assert call(client, "GET", "/api/ropa?format=xlsx", token).content[:2] == b"PK"
    assert set(call(client, "GET", "/api/disclosures/verify", token).json()) == {"ok", "entries", "first_bad", "anchored", "reason"}
    assert set(call(client, "GET", "/api/disclosures/head", token).json()) == {"entries", "head", "signature", "public_key"}
    rows = call(client, "GET", "/api/disclosures", token).json()
    assert rows == [] or "warnings" in rows[0]


def test_events_batch_and_who_logged_a_disclosure(web: tuple[TestClient, dict[str, str]], declared: sa.Engine) -> None:
    client, tokens = web
    batch = [transfer(f"b{i}") for i in range(5)] + [transfer("bad", legal_basis="because")]
    assert call(client, "POST", "/api/events", tokens["service"], batch).json() == {"ingested": 5, "duplicates": 0, "dead_lettered": 1}
    assert call(client, "POST", "/api/events", tokens["service"], batch[0]).json() == {"ingested": 0, "duplicates": 1, "dead_lettered": 0}
    logged = call(client, "POST", "/api/disclosures", tokens["legal"], SNAPSHOT).json()
    assert (logged["request_id"], logged["version"]) == ("WEB-1", 1)
    with declared.connect() as conn:
        body = conn.execute(sa.text("SELECT body FROM ledger_entry")).scalar_one()
    assert orjson.loads(body)["origin"] == "web:legal-user"


@pytest.mark.parametrize(("path", "body", "loc"), [
    ("/api/disclosures", {**SNAPSHOT, "instrument": "pigeon"}, ["body", "instrument"]),
    ("/api/disclosures", {**SNAPSHOT, "notice": "delayed"}, ["body", "notice_due"]),
    ("/api/disclosures", {**SNAPSHOT, "subject_refs": ["jane@example.org"]}, ["body", "subject_refs", 0]),
    ("/api/disclosures", [1, 2], ["body"]),
    ("/api/events", [1, 2], ["body"]),
])
def test_bad_bodies_are_422_naming_the_field(web: tuple[TestClient, dict[str, str]], path: str, body: Any, loc: list) -> None:
    client, tokens = web
    response = call(client, "POST", path, tokens["admin"], body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == loc


def test_bad_manifest_is_422_naming_the_field(web: tuple[TestClient, dict[str, str]]) -> None:
    client, tokens = web
    body = _manifest_body()
    body["activities"][3]["legal_basis"] = "vibes"
    response = call(client, "POST", "/api/manifests", tokens["admin"], body)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "activities", 3, "legal_basis"]
    not_json = client.post("/api/events", content=b"{nope", headers={"Authorization": f"Bearer {tokens['service']}",
                                                                      "Content-Type": "application/json"})
    assert not_json.status_code == 422


def test_openapi_document(web: tuple[TestClient, dict[str, str]]) -> None:
    client, _ = web
    doc = client.get("/openapi.json").json()
    assert {"/api/recipients", "/api/events", "/api/disclosures", "/api/ropa"} <= set(doc["paths"])


def sign_in(client: TestClient, token: str, next: str = "/") -> Any:
    """Sign in through the form, as a browser does: the form's CSRF token comes with the page."""
    form = client.get("/login")
    csrf = re.search(r'name=csrf_token value="([^"]+)"', form.text)
    assert csrf and form.cookies.get("registry_login_csrf") == csrf.group(1)
    return client.post("/login", data={"token": token, "next": next, "csrf_token": csrf.group(1)}, follow_redirects=False)


def csrf_of(client: TestClient, page: str = "/subject") -> str:
    found = re.search(r'name=csrf_token value="([^"]+)"', client.get(page).text)
    assert found
    return found.group(1)


def test_pages_need_a_login_and_hash_the_subject_id(web: tuple[TestClient, dict[str, str]]) -> None:
    client, tokens = web
    assert client.get("/", follow_redirects=False).status_code == 303
    assert sign_in(client, "drt_nope").status_code == 401
    assert sign_in(client, tokens["auditor"]).status_code == 303
    for page in ("/", "/recipients?category=user.device", "/datamap", "/ropa", "/subject", "/disclosures"):
        assert client.get(page).status_code == 200, page
    csrf = csrf_of(client)
    answer = client.post("/subject", data={"subject_id": "customer-1", "csrf_token": csrf})
    assert answer.status_code == 200 and ref("customer-1") in answer.text and "customer-1</" not in answer.text
    assert client.post("/disclosures", data={**SNAPSHOT, "csrf_token": csrf}).status_code == 403  # auditors read only


def test_the_session_cookie_is_not_the_token(web: tuple[TestClient, dict[str, str]], declared: sa.Engine) -> None:
    client, tokens = web
    response = sign_in(client, tokens["legal"])
    cookie = response.headers["set-cookie"]
    session_id = response.cookies["registry_session"]
    assert tokens["legal"] not in cookie and session_id != tokens["legal"] and len(session_id) >= 40
    assert all(part in cookie for part in ("HttpOnly", "SameSite=strict", "Max-Age=43200")) and "Secure" not in cookie
    with declared.connect() as conn:
        stored = conn.exec_driver_sql("SELECT id_hash, role, name, expires_at - created_at FROM web_session").one()
    assert stored.id_hash == hashlib.sha256(session_id.encode()).hexdigest() and session_id not in all_text(declared)
    assert (stored.role, stored.name) == ("legal", "legal-user")
    behind_proxy = TestClient(client.app, base_url="http://testserver")
    form = behind_proxy.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in form.headers["set-cookie"]
    assert "Secure" in TestClient(client.app, base_url="https://testserver").get("/login").headers["set-cookie"]


def test_form_posts_need_the_csrf_token(web: tuple[TestClient, dict[str, str]], declared: sa.Engine) -> None:
    client, tokens = web
    sign_in(client, tokens["legal"])
    csrf = csrf_of(client, "/disclosures")
    assert client.post("/disclosures", data=SNAPSHOT).status_code == 403
    assert client.post("/disclosures", data={**SNAPSHOT, "csrf_token": csrf[::-1]}).status_code == 403
    assert client.post("/subject", data={"subject_id": "customer-1"}).status_code == 403
    assert client.post("/logout", data={}).status_code == 403
    with declared.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM ledger_entry").scalar_one() == 0
    logged = client.post("/disclosures", data={**SNAPSHOT, "csrf_token": csrf})
    assert logged.status_code == 200 and "Logged WEB-1 version 1" in logged.text
    # the sign-in form has its own token, bound to a cookie set with the form
    fresh = TestClient(client.app)
    assert fresh.post("/login", data={"token": tokens["legal"]}, follow_redirects=False).status_code == 403
    assert "registry_session" not in fresh.cookies


def test_the_api_takes_only_the_bearer_header(web: tuple[TestClient, dict[str, str]]) -> None:
    client, tokens = web
    sign_in(client, tokens["admin"])
    assert client.get("/api/drift").status_code == 401  # the session cookie is sent, and ignored
    # what a cross-site page can send: the browser's cookie and a text/plain body, no preflight
    forged = client.post("/api/events", content=orjson.dumps(transfer("x1")), headers={"Content-Type": "text/plain"})
    assert forged.status_code == 401
    assert client.get("/api/drift", headers={"Cookie": f"registry_token={tokens['admin']}"}).status_code == 401


@pytest.mark.parametrize(("media", "status"), [
    ("text/plain", 415), ("application/x-www-form-urlencoded", 415), ("multipart/form-data; boundary=x", 415), (None, 415),
    ("application/json", 200), ("application/json; charset=utf-8", 200), ("application/cloudevents+json", 200),
    ("application/cloudevents-batch+json", 200),
])
def test_events_content_types(web: tuple[TestClient, dict[str, str]], media: str | None, status: int) -> None:
    client, tokens = web
    headers = {"Authorization": f"Bearer {tokens['service']}", **({"Content-Type": media} if media else {})}
    body = [transfer("ct1")] if media and "batch" in media else transfer("ct1")
    response = client.post("/api/events", content=orjson.dumps(body), headers=headers)
    assert response.status_code == status, response.text
    assert status != 200 or response.json()["ingested"] == 1


def test_logout_ends_the_session(web: tuple[TestClient, dict[str, str]], declared: sa.Engine) -> None:
    client, tokens = web
    sign_in(client, tokens["auditor"])
    session_id = client.cookies["registry_session"]
    assert client.get("/", follow_redirects=False).status_code == 200
    out = client.post("/logout", data={"csrf_token": csrf_of(client)}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert client.get("/", follow_redirects=False).status_code == 303
    replay = TestClient(client.app, cookies={"registry_session": session_id})  # a copy of the old cookie
    assert replay.get("/", follow_redirects=False).headers["location"] == "/login?next=/"
    with declared.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM web_session").scalar_one() == 0


def test_an_expired_session_redirects_to_sign_in(web: tuple[TestClient, dict[str, str]], declared: sa.Engine) -> None:
    client, tokens = web
    sign_in(client, tokens["legal"])
    assert client.get("/disclosures", follow_redirects=False).status_code == 200
    with declared.begin() as conn:  # twelve hours later
        conn.execute(sa.text("UPDATE web_session SET expires_at = :t"), {"t": datetime.now(timezone.utc) - timedelta(seconds=1)})
    answer = client.get("/disclosures", follow_redirects=False)
    assert answer.status_code == 303 and answer.headers["location"] == "/login?next=/disclosures"
    assert client.post("/disclosures", data={**SNAPSHOT, "csrf_token": "x"}, follow_redirects=False).status_code == 303


def test_page_work_runs_off_the_event_loop() -> None:
    """FastAPI runs plain functions (routes and dependencies) in its thread pool: a page route
    that is a coroutine must hand its database work to ``run_in_threadpool`` (only the disclosure
    form does, after reading the form body on the loop)."""
    import inspect

    from fastapi.routing import APIRoute

    from registry.web import disclosure_pages, guard

    routes = [route for route in (*guard.router.routes, *guard.public.routes) if isinstance(route, APIRoute)]
    assert {"/", "/disclosures", "/subject", "/login", "/logout"} <= {route.path for route in routes}
    coroutines = {(route.path, *sorted(route.methods)) for route in routes if inspect.iscoroutinefunction(route.endpoint)}
    assert coroutines == {("/disclosures", "POST"), ("/disclosures/new", "POST")}

    assert "run_in_threadpool(_log_from_form" in inspect.getsource(disclosure_pages.disclosures_submit)


def test_a_duplicate_key_in_one_posted_event_dead_letters_that_event_only(web: tuple[TestClient, dict[str, str]],
                                                                          declared: sa.Engine) -> None:
    # contract §1: a parser keeping the last of two values would check another event than the
    # bytes sent; the HTTP path gives each event's own bytes to the same checks as the consumer
    from .conftest import all_text

    client, tokens = web
    good = orjson.dumps(transfer("http-dup-ok")).decode()
    twice = orjson.dumps(transfer("http-dup-bad"))[:-1].decode() + ', "subject": "carol.http@example.com", "subject": "ok"}'
    body = f"[ {good} ,\n{twice}]".encode()
    answer = client.post("/api/events", content=body, headers={"Authorization": f"Bearer {tokens['service']}",
                                                               "Content-Type": "application/json"})
    assert answer.status_code == 200 and answer.json() == {"ingested": 1, "duplicates": 0, "dead_lettered": 1}
    dead = call(client, "GET", "/api/dead-letters", tokens["auditor"]).json()
    assert [d["reason"] for d in dead if "http-dup-bad" in d["payload"]] == ["invalid_json"]
    assert "carol.http@example.com" not in all_text(declared)
