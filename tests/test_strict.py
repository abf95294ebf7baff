"""Issue 21: answers that are never silently wrong. A typo'd key, an empty window, a time past
year 9998 or an impossible date is exit 2 with one line (422 on the API), never an empty answer
or a traceback; commands that only read never create, migrate or lock a store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.main import get_command
from typer.testing import CliRunner

from registry.cli import app
from registry.intake.ingest import Ingestor

from .conftest import EXAMPLE_MANIFEST
from .helpers import record, ref, transfer
from .test_cli import _commands

runner = CliRunner()


def cli(db: str, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--db", db, *args])
    return result.exit_code, result.stdout, result.stderr


def one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()


# every command that only reads, with what it needs to get as far as the store
READ_COMMANDS: dict[str, list[str]] = {
    "recipients": ["recipients", "--category", "user"],
    "recipient": ["recipient", "stripe"],
    "subject": ["subject", "a" * 64],
    "drift": ["drift"],
    "subprocessors": ["subprocessors"],
    "subprocessors list": ["subprocessors", "list", "--format", "json"],
    "subprocessors changes": ["subprocessors", "changes", "--format", "json"],
    "ropa": ["ropa", "--format", "json"],
    "notice": ["notice"],
    "diagram": ["diagram", "--format", "dot"],
    "report": ["report", "--out", "{tmp}/reports"],
    "status": ["status", "--bootstrap-servers", "127.0.0.1:1"],
    "dead-letters list": ["dead-letters", "list"],
    "disclosures list": ["disclosures", "list"],
    "disclosures report": ["disclosures", "report", "--year", "2026"],
    "disclosures head": ["disclosures", "head"],
    "disclosures verify": ["disclosures", "verify"],
    "manifests": ["manifests"],
    "manifests diff": ["manifests", "diff", "1", "2"],
    "export fides": ["export", "fides", "--out", "{tmp}/fides"],
    "tokens list": ["tokens", "list"],
}
# commands that write (they create and migrate the store) or touch no store at all
OTHER_COMMANDS = {"declare", "ingest", "subject-ref", "publish", "consume", "dead-letters replay", "disclosures log",
                  "ledger-key create", "import fides", "serve", "tokens create", "tokens revoke", "retention apply"}


GROUPS = {"dead-letters", "disclosures", "ledger-key", "import", "export", "tokens", "retention"}  # only hold commands


def test_every_command_is_classified_as_reading_or_not() -> None:
    assert {" ".join(c) for c in _commands(get_command(app))} == set(READ_COMMANDS) | OTHER_COMMANDS | GROUPS


@pytest.mark.parametrize("name", sorted(READ_COMMANDS))
@pytest.mark.parametrize("scheme", ["sqlite:///", ""])
def test_a_read_against_a_missing_store_creates_nothing(name: str, scheme: str, tmp_path: Path) -> None:
    folder = tmp_path / "empty"
    folder.mkdir()
    path = folder / "registy.db"  # the typo of the issue
    args = [a.replace("{tmp}", str(tmp_path)) for a in READ_COMMANDS[name]]
    code, out, err = cli(f"{scheme}{path}", *args)
    assert one_line_error(code, err) == f"error: no store at {path}: run registry declare first"
    assert out == "" and list(folder.iterdir()) == []


@pytest.fixture
def store(tmp_path: Path) -> str:
    path = f"sqlite:///{tmp_path / 'registry.db'}"
    assert cli(path, "declare", str(EXAMPLE_MANIFEST))[0] == 0
    from registry.model.store import open_store

    Ingestor(open_store(path)).ingest([record(transfer("e1", subject_refs=[ref("c1")])),
                                       record(transfer("e2", recipient="newcomer", time="2026-03-02T10:00:00Z"))])
    return path


TYPOS = [
    (["recipients", "--category", "user.contact.emial"], "unknown category 'user.contact.emial' (did you mean user.contact.email"),
    (["recipient", "stripee"], "unknown recipient 'stripee': neither declared nor observed (did you mean stripe"),
    (["diagram", "--format", "dot", "--category", "user.contact.emial"], "unknown category 'user.contact.emial'"),
    (["diagram", "--format", "dot", "--recipient", "stripee"], "unknown recipient 'stripee'"),
]


@pytest.mark.parametrize("args, message", TYPOS)
def test_a_typo_is_exit_2_naming_the_closest_keys(store: str, args: list[str], message: str) -> None:
    code, out, err = cli(store, *args)
    assert one_line_error(code, err).startswith(f"error: {message}") and out == ""


def test_keys_observed_but_never_declared_are_valid_questions(store: str) -> None:
    code, out, err = cli(store, "--json", "recipient", "newcomer")
    assert code == 0, err
    assert json.loads(out)["declared"] is False and json.loads(out)["flows"][0]["events"] == 1
    # a recipient observed outside the window is known: its answer for the window is empty, not an error
    code, out, _ = cli(store, "--json", "recipient", "newcomer", "--until", "2026-03-02")
    assert code == 0 and json.loads(out)["flows"] == []


@pytest.mark.parametrize("command", [["recipients", "--category", "user"], ["recipient", "google-analytics"], ["drift"]])
@pytest.mark.parametrize("window", [["--since", "2026-03-02", "--until", "2026-03-01"], ["--since", "2026-03-01", "--until", "2026-03-01"],
                                    ["--since", "2026-03-02", "--as-of", "2026-03-01"]])
def test_an_empty_or_inverted_window_is_exit_2(store: str, command: list[str], window: list[str]) -> None:
    code, out, err = cli(store, *command, *window)
    assert one_line_error(code, err).startswith("error: the window is empty: since (2026-03-0")


BAD_TIMES = [("--since", "9999-12-31T12:00:00Z", "must lie in the years 1 to 9998"),
             ("--until", "9999-12-31T23:59:59Z", "must lie in the years 1 to 9998"),
             ("--as-of", "9999-12-31", "must lie in the years 1 to 9998"),
             ("--since", "2026-02-30", "not a date on the calendar"),
             ("--as-of", "2026-02-30T10:00:00Z", "not a date on the calendar"),
             ("--since", "yesterday", "not an RFC 3339 time")]


@pytest.mark.parametrize("command", [["recipients", "--category", "user"], ["recipient", "stripe"], ["drift"], ["ropa", "--format", "json"]])
@pytest.mark.parametrize("option, value, message", BAD_TIMES)
def test_times_outside_the_calendar_are_one_line(store: str, command: list[str], option: str, value: str, message: str) -> None:
    if command[0] == "ropa" and option != "--as-of":
        return  # ropa has no window, only --as-of
    code, out, err = cli(store, *command, option, value)
    assert one_line_error(code, err).startswith(f"error: {option}: {message}")


def test_a_read_never_migrates_an_older_store(tmp_path: Path) -> None:
    from .helpers import store_at

    path = tmp_path / "old.db"
    store_at(f"sqlite:///{path}", "0003").dispose()
    before = path.read_bytes()
    code, _, err = cli(str(path), "drift")
    assert "older schema (0003)" in one_line_error(code, err) and "registry declare" in err
    assert path.read_bytes() == before and not (tmp_path / "old.db.migrate.lock").exists()


def test_the_api_answers_a_typo_and_an_empty_window_with_422(store: str) -> None:
    from fastapi.testclient import TestClient

    from registry.model.store import open_store
    from registry.web import create_app
    from registry.web.tokens import create_token

    token = create_token(open_store(store), "auditor").token
    client = TestClient(create_app(store))
    headers = {"Authorization": f"Bearer {token}"}
    typo = client.get("/api/recipients?category=user.contact.emial", headers=headers)
    assert typo.status_code == 422 and "did you mean user.contact.email" in typo.json()["detail"][0]["msg"]
    assert client.get("/api/recipients/stripee", headers=headers).status_code == 422
    window = client.get("/api/drift?since=2026-03-02&until=2026-03-01", headers=headers)
    assert window.status_code == 422 and "the window is empty" in window.json()["detail"][0]["msg"]
    far = client.get("/api/recipients?category=user&since=9999-12-31T12:00:00Z", headers=headers)
    assert far.status_code == 422 and far.json()["detail"][0]["loc"] == ["body", "since"]
    # the recipients page asks the same library question: a typo is a page saying so, not an empty table
    assert "did you mean user.contact.email" in _page_text(client, token, "/recipients?category=user.contact.emial")


def _page_text(client: Any, token: str, path: str) -> str:
    from .test_web import sign_in

    assert sign_in(client, token).status_code == 303
    return str(client.get(path).text)


def test_a_plain_path_is_a_sqlite_file(tmp_path: Path) -> None:
    """`--db registry.db` once failed with SQLAlchemy's "Could not parse SQLAlchemy URL"."""
    path = tmp_path / "registry.db"
    code, _, err = cli(str(path), "declare", str(EXAMPLE_MANIFEST))
    assert code == 0, err
    code, out, _ = cli(f"sqlite:///{path}", "--json", "manifests")
    assert code == 0 and len(json.loads(out)) == 1
    code, out, _ = cli(str(path), "--json", "manifests")
    assert code == 0 and len(json.loads(out)) == 1
    with sa.create_engine(f"sqlite:///{path}").connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM manifest_version").scalar_one() == 1


def test_a_path_with_uri_characters_is_one_file(tmp_path: Path) -> None:
    """The read-only store is opened as a SQLite URI: ?, # and % in a path must not cut it."""
    folder = tmp_path / "odd #%?"
    folder.mkdir()
    path = str(folder / "a b#%.db")
    assert cli(path, "declare", str(EXAMPLE_MANIFEST))[0] == 0
    code, out, err = cli(path, "--json", "manifests")
    assert code == 0 and len(json.loads(out)) == 1, err


@pytest.mark.empty_store
def test_a_read_on_an_empty_postgresql_database_creates_no_table(postgres_url: str) -> None:
    code, out, err = cli(postgres_url, "drift")
    assert one_line_error(code, err).startswith("error: no store at postgresql") and out == ""
    with sa.create_engine(postgres_url.replace("postgresql://", "postgresql+psycopg://", 1)).connect() as conn:
        assert sa.inspect(conn).get_table_names() == []
    assert cli(postgres_url, "declare", str(EXAMPLE_MANIFEST))[0] == 0
    code, out, err = cli(postgres_url, "--json", "manifests")
    assert code == 0 and len(json.loads(out)) == 1, err
