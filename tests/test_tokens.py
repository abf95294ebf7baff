"""Issue 21: tokens can be listed (never the token) and revoked; a revoked token opens nothing
from the next request on, and the page sessions it signed in end at once. Migration 0006 on a
store that already holds tokens and sessions, SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from registry.cli import app
from registry.model.store import open_store
from registry.model.tables import ApiToken, WebSession
from registry.web import create_app
from registry.web.sessions import find_session, start_session
from registry.web.tokens import TokenOwner, create_token, list_tokens, lookup_token, revoke_token

from .helpers import store_at
from .test_web import sign_in

runner = CliRunner()


def test_list_and_revoke_on_the_cli(db_url: str) -> None:
    def cli(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["--db", db_url, "--json", *args])
        return result.exit_code, result.stdout, result.stderr

    code, out, _ = cli("tokens", "create", "--role", "legal", "--name", "lena")
    token = json.loads(out)["token"]
    assert cli("tokens", "create", "--role", "auditor", "--name", "audra")[0] == 0
    code, out, _ = cli("tokens", "list")
    rows = json.loads(out)
    assert code == 0 and [(r["name"], r["role"], r["revoked"], r["last_used_at"]) for r in rows] == [
        ("audra", "auditor", False, None), ("lena", "legal", False, None)]
    assert set(rows[0]) == {"name", "role", "created_at", "last_used_at", "revoked"} and token not in out
    assert lookup_token(open_store(db_url), token) is not None
    assert json.loads(cli("tokens", "list")[1])[1]["last_used_at"] is not None  # used once, now
    code, out, _ = cli("tokens", "revoke", "lena")
    assert code == 0 and json.loads(out) == {"name": "lena", "revoked": True}
    assert lookup_token(open_store(db_url), token) is None
    assert [r["revoked"] for r in json.loads(cli("tokens", "list")[1])] == [False, True]
    code, _, err = cli("tokens", "revoke", "lenna")
    assert code == 2 and err.strip() == "error: NAME: no token named 'lenna' (did you mean lena?)"
    code, _, err = cli("tokens", "revoke", "lena")
    assert code == 2 and err.strip() == "error: the token 'lena' is already revoked"


def test_a_revoked_token_and_its_sessions_end_at_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    db = f"sqlite:///{tmp_path / 'web.db'}"
    engine = open_store(db)
    token = create_token(engine, "auditor", "audra").token
    other = create_token(engine, "auditor", "otto").token
    browser, api = TestClient(create_app(db)), TestClient(create_app(db))
    assert sign_in(browser, token).status_code == 303 and browser.get("/drift", follow_redirects=False).status_code == 200
    bystander = TestClient(create_app(db))
    assert sign_in(bystander, other).status_code == 303
    assert api.get("/api/drift", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    revoke_token(engine, "audra")
    assert api.get("/api/drift", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    after = browser.get("/drift", follow_redirects=False)
    assert after.status_code == 303 and after.headers["location"].startswith("/login")
    assert sign_in(TestClient(create_app(db)), token).status_code != 303  # nor can it sign in again
    assert bystander.get("/drift", follow_redirects=False).status_code == 200  # another token's session stays


@pytest.mark.empty_store
def test_migration_0006_keeps_tokens_and_sessions(db_url: str) -> None:
    old = store_at(db_url, "0004")
    now = datetime.now(timezone.utc)
    with old.begin() as conn:
        conn.execute(sa.insert(ApiToken), [{"token_hash": "ab" * 32, "role": "legal", "name": "lena", "created_at": now}])
        conn.execute(sa.insert(WebSession), [{"id_hash": "cd" * 32, "role": "legal", "name": "lena", "csrf_token": "x",
                                              "created_at": now, "expires_at": now + timedelta(hours=1)}])
    old.dispose()
    engine = open_store(db_url)
    assert [(t.name, t.revoked, t.last_used_at) for t in list_tokens(engine)] == [("lena", False, None)]
    # a session from before 0006 names no token: revoking its token by name still ends it
    session_id, _ = start_session(engine, TokenOwner(role="legal", name="lena"))
    assert find_session(engine, session_id) is not None
    revoke_token(engine, "lena")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM web_session").scalar_one() == 0
    assert list_tokens(engine)[0].revoked is True


def test_a_revoke_between_lookup_and_session_start_leaves_no_live_session(db_url: str) -> None:
    """/login looks the token up and starts the session in two transactions: a revoke in between
    must not leave a 12-hour session signed in with a revoked token."""
    engine = open_store(db_url)
    token = create_token(engine, "auditor", "audra").token
    owner = lookup_token(engine, token)
    assert owner is not None
    revoke_token(engine, "audra")
    session_id, _ = start_session(engine, owner)
    assert find_session(engine, session_id) is None


def test_a_second_live_token_of_one_name_is_refused(db_url: str) -> None:
    """`tokens revoke NAME` revokes by name: two live tokens of one name could not be told apart."""
    def cli(*args: str) -> tuple[int, str, str]:
        result = runner.invoke(app, ["--db", db_url, "--json", *args])
        return result.exit_code, result.stdout, result.stderr

    assert cli("tokens", "create", "--role", "legal", "--name", "lena")[0] == 0
    code, out, err = cli("tokens", "create", "--role", "admin", "--name", "lena")
    assert code == 2 and out == "" and err.strip() == (
        "error: --name: a live token is already named 'lena': choose another name, or revoke it first")
    assert [t.name for t in list_tokens(open_store(db_url))] == ["lena"]
    assert cli("tokens", "revoke", "lena")[0] == 0
    assert cli("tokens", "create", "--role", "admin", "--name", "lena")[0] == 0  # a revoked name may be used again
