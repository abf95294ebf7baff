"""The ``registry`` command: help for every command, JSON shapes of the contract, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.main import get_command
from typer.testing import CliRunner

from registry.cli import app

from .conftest import EXAMPLE_MANIFEST, ROOT, SUBJECT_KEY
from .helpers import ref, transfer

runner = CliRunner()


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, cmd in group.commands.items():
        found.append((*prefix, name))
        if hasattr(cmd, "commands"):
            found += _commands(cmd, (*prefix, name))
    return found


@pytest.mark.parametrize("path", _commands(get_command(app)))
def test_every_command_has_help(path: tuple[str, ...]) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    command = get_command(app)
    for part in path:
        command = command.commands[part]  # type: ignore[attr-defined]
    assert command.help, f"{' '.join(path)} has no help text"


def cli(db: str, *args: str, input: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(app, ["--db", db, *args], input=input)
    return result.exit_code, result.stdout, result.stderr


def _shape(command: Any) -> Any:
    """A click command as what a user can type: its parameters' flags, and its subcommands'."""
    subcommands = getattr(command, "commands", {})
    return (sorted(tuple(p.opts) for p in command.params), {name: _shape(c) for name, c in subcommands.items()})


def test_a_command_line_loads_only_the_groups_of_its_command() -> None:
    from registry.cli.entry import COMMANDS, command_of
    from registry.cli.root import build

    full = get_command(app)
    assert set(COMMANDS) == set(full.commands)  # typed the same, whatever the other groups
    for name, groups in COMMANDS.items():
        assert _shape(get_command(build(groups)).commands[name]) == _shape(full.commands[name]), name
    assert command_of(["--db", "x", "--json", "consume", "--group", "g"]) == "consume"
    assert command_of(["--db=x", "status"]) == "status"
    assert command_of(["--help"]) is None and command_of([]) is None and command_of(["--db"]) is None
    probe = ("import sys\nsys.argv = ['registry', '--db', 'sqlite://', 'consume', '--help']\nfrom registry.cli import main\n"
             "try:\n    main()\nexcept SystemExit:\n    pass\n"
             "print('LOADED', ' '.join(sorted(m for m in sys.modules if m.startswith('registry.cli.'))))")
    printed = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    loaded = printed.split("LOADED", 1)[1].split()
    assert loaded == ["registry.cli.common", "registry.cli.consume", "registry.cli.entry", "registry.cli.options", "registry.cli.root",
                      "registry.cli.stream"], loaded


def test_declare_and_ingest_json(db_url: str, tmp_path: Path) -> None:
    code, out, _ = cli(db_url, "--json", "declare", str(EXAMPLE_MANIFEST))
    assert code == 0
    assert json.loads(out) == {"controller": "Blausen Medical Communications, Inc.", "recipients": 18, "activities": 13, "version": 1}
    stream = tmp_path / "events.jsonl"
    lines = [json.dumps(transfer(f"e{i}", subject_refs=[ref(f"c{i}")])) for i in range(5)] + ["{bad", ""]
    stream.write_text("\n".join(lines) + "\n")
    code, out, _ = cli(db_url, "ingest", str(stream), "--json")
    assert code == 0 and json.loads(out) == {"ingested": 5, "duplicates": 0, "dead_lettered": 1}
    code, out, _ = cli(db_url, "ingest", "-", "--json", input=stream.read_text())
    assert json.loads(out) == {"ingested": 0, "duplicates": 5, "dead_lettered": 1}
    code, out, _ = cli(db_url, "dead-letters", "list", "--json")
    rows = json.loads(out)
    assert [r["reason"] for r in rows] == ["invalid_json"] and rows[0]["offset"] == 6
    code, out, _ = cli(db_url, "dead-letters", "replay", "--json")
    assert json.loads(out) == {"replayed": 1, "ingested": 0, "still_dead": 1}


def test_bad_manifest_exits_2_naming_the_field_and_stores_nothing(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'r.db'}"
    document = yaml.safe_load(EXAMPLE_MANIFEST.read_text())
    document["activities"][3]["legal_basis"] = "vibes"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(document))
    code, out, err = cli(db, "declare", str(bad))
    assert code == 2 and out == ""
    assert "activities[3].legal_basis" in err and "Traceback" not in err
    code, out, _ = cli(db, "--json", "declare", str(EXAMPLE_MANIFEST))
    assert json.loads(out)["version"] == 1  # the bad one left no version behind


def test_missing_file_exits_2(tmp_path: Path) -> None:
    code, _, err = cli(f"sqlite:///{tmp_path / 'r.db'}", "ingest", str(tmp_path / "nope.jsonl"))
    assert code == 2 and "nope.jsonl" in err


def test_subject_ref_is_the_keyed_hash() -> None:
    result = runner.invoke(app, ["subject-ref", "customer-42"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == ref("customer-42")
    import hashlib
    import hmac

    assert json.loads(result.stdout) == hmac.new(SUBJECT_KEY.encode(), b"customer-42", hashlib.sha256).hexdigest()


def test_subject_ref_without_key_exits_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REGISTRY_SUBJECT_KEY")
    result = runner.invoke(app, ["subject-ref", "x"])
    assert result.exit_code == 2 and "REGISTRY_SUBJECT_KEY" in result.stderr


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("controller: {name: X}\nrecipients: []\nactivities: []\n")
    proc = subprocess.run([sys.executable, "-m", "registry", "--db", f"sqlite:///{tmp_path / 'r.db'}", "declare", str(bad)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: controller.country: is required"


@pytest.mark.slow
def test_100k_generated_events_through_the_cli(tmp_path: Path) -> None:
    """The issue's acceptance run: declare, ingest 100k generated events, ingest again."""
    stream, summary = tmp_path / "stream.jsonl", tmp_path / "summary.json"
    subprocess.run([sys.executable, "-m", "examples.blausen.generate", "--events", "100000", "--seed", "11",
                    "--out", str(stream), "--summary", str(summary)], check=True, cwd=ROOT, capture_output=True)
    expected = json.loads(summary.read_text())
    db = f"sqlite:///{tmp_path / 'r.db'}"

    def run(*args: str) -> dict:
        proc = subprocess.run([sys.executable, "-m", "registry", "--db", db, "--json", *args],
                              capture_output=True, text=True, cwd=ROOT, check=True)
        return json.loads(proc.stdout)

    run("declare", str(EXAMPLE_MANIFEST))
    first = run("ingest", str(stream))
    assert first == {"ingested": expected["valid"], "duplicates": 0, "dead_lettered": expected["dead_lettered"]}
    assert first["ingested"] + first["dead_lettered"] == expected["lines"] == 100000
    dead = run("dead-letters", "list")
    by_reason: dict[str, int] = {}
    for row in dead:
        by_reason[row["reason"]] = by_reason.get(row["reason"], 0) + 1
    assert by_reason == expected["dead_by_reason"]
    second = run("ingest", str(stream))
    assert second == {"ingested": 0, "duplicates": expected["valid"], "dead_lettered": expected["dead_lettered"]}
    assert len(run("dead-letters", "list")) == len(dead)


def test_question_commands_follow_the_contract_shapes(tmp_path: Path) -> None:
    from .test_questions import EVENTS, MANIFEST, A

    db = f"sqlite:///{tmp_path / 'q.db'}"
    manifest, stream = tmp_path / "m.yaml", tmp_path / "e.jsonl"
    manifest.write_text(MANIFEST)
    stream.write_text("\n".join(json.dumps(e) for e in EVENTS))
    assert cli(db, "declare", str(manifest))[0] == 0
    assert cli(db, "ingest", str(stream))[0] == 0

    code, out, _ = cli(db, "--json", "recipients", "--category", "user.contact", "--include-subprocessors")
    rows = json.loads(out)
    assert code == 0 and [r["recipient"] for r in rows] == ["mail", "relay", "relay-store"]
    assert set(rows[0]) == {"recipient", "name", "service", "role", "country", "declared", "via", "categories",
                            "first_seen", "last_seen", "events"}
    code, out, _ = cli(db, "recipient", "mail", "--json")
    detail = json.loads(out)
    assert set(detail) == {"recipient", "name", "service", "role", "country", "declared", "flows"}
    assert set(detail["flows"][0]) == {"source", "category", "purpose", "legal_basis", "first_seen", "last_seen", "events", "records"}
    code, out, _ = cli(db, "subject", A, "--json")
    answer = json.loads(out)
    assert set(answer) == {"subject_ref", "transfers", "disclosures", "notify_on_erasure", "covered_since"}
    assert set(answer["transfers"][0]) == {"recipient", "source", "categories", "purposes", "first_seen", "last_seen", "events"}
    code, out, _ = cli(db, "drift", "--json")
    assert code == 0 and set(json.loads(out)[0]) == {"kind", "source", "recipient", "category", "purpose", "activity",
                                                     "detail", "first_seen", "last_seen", "events"}
    code, out, _ = cli(db, "drift", "--json", "--fail-on-drift")
    assert code == 1 and len(json.loads(out)) == 8
    code, out, _ = cli(db, "subprocessors", "--json")
    assert json.loads(out)[0] == {"recipient": "relay", "processor_of": "mail", "chain": ["mail", "relay"], "country": "US"}
    code, _, err = cli(db, "recipients", "--category", "user.contact", "--since", "last tuesday")
    assert code == 2 and "--since" in err
    code, _, err = cli(db, "subject", "jane@example.org")
    assert code == 2 and "REF" in err


def test_disclosure_commands(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'd.db'}"
    snapshot = tmp_path / "request.yaml"
    snapshot.write_text("request_id: HC-7\nauthority: District Court of Harris County\nauthority_country: US\n"
                        "instrument: subpoena\nreceived_at: 2026-03-02T09:00:00Z\noutcome: pending\nnotice: pending\n")
    code, out, _ = cli(db, "--json", "disclosures", "log", str(snapshot))
    logged = json.loads(out)
    assert code == 0 and set(logged) == {"request_id", "version", "hash"} and logged["version"] == 1
    code, out, err = cli(db, "--json", "disclosures", "list", "--open")
    rows = json.loads(out)
    assert set(rows[0]) == {"request_id", "authority", "authority_country", "instrument", "emergency", "received_at", "disclosed_at",
                            "due_at", "outcome", "notice", "notice_due", "versions", "warnings"}  # contract v3 §6
    assert "GDPR Art. 48" in err
    code, out, _ = cli(db, "--json", "disclosures", "report", "--year", "2026", "--format", "json")
    assert json.loads(out)["requests"] == 1
    code, out, _ = cli(db, "disclosures", "report", "--year", "2026")
    assert out.startswith("# Transparency report 2026")
    code, out, _ = cli(db, "--json", "disclosures", "verify")
    assert code == 0 and json.loads(out) == {"ok": True, "entries": 1, "first_bad": None, "anchored": None,
                                             "reason": "1 entries chained; no signature was checked: no ledger key is configured; "
                                                       "no anchor checked, so a deleted tail would not be seen"}
    import sqlalchemy as sa

    engine = sa.create_engine(db)
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE ledger_entry SET body = REPLACE(body, 'Harris', 'Travis')")
    engine.dispose()
    code, out, _ = cli(db, "--json", "disclosures", "verify")
    result = json.loads(out)
    assert code == 1 and {k: result[k] for k in ("ok", "entries", "first_bad", "anchored")} == {
        "ok": False, "entries": 1, "first_bad": "HC-7", "anchored": None}
    assert result["reason"].startswith("entry 1 (HC-7) does not fit the hash chain")
    snapshot.write_text(snapshot.read_text().replace("notice: pending", "notice: delayed"))
    code, out, err = cli(db, "disclosures", "log", str(snapshot))
    assert code == 2 and err.strip() == "error: notice_due: is required when notice is delayed"


def test_a_broken_store_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # claims the newest schema but has no tables
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.execute("INSERT INTO alembic_version VALUES ('0001')")
    code, _, err = cli(f"sqlite:///{path}", "drift")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "older schema (0001)" in err  # a read never migrates (contract §6): it says what to run
    code, _, err = cli(f"sqlite:///{path}", "declare", str(Path(__file__).parent.parent / "examples/blausen/manifest.yaml"))
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "no such table" in err


def test_ledger_key_head_and_verify_with_anchor_and_public_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The ledger commands end to end: make a key, log signed, save the head, delete the tail,
    verify as an auditor with only the public key and the saved head."""
    db = f"sqlite:///{tmp_path / 'l.db'}"
    key, public = tmp_path / "ledger.pem", tmp_path / "ledger.pub"
    code, out, _ = cli(db, "ledger-key", "create", "--out", str(key))
    assert code == 0 and out.startswith("-----BEGIN PUBLIC KEY-----") and oct(key.stat().st_mode & 0o777) == "0o600"
    public.write_text(out)
    code, _, err = cli(db, "ledger-key", "create", "--out", str(key))
    assert code == 2 and "never overwritten" in err
    monkeypatch.setenv("REGISTRY_LEDGER_KEY", str(key))
    snapshot = tmp_path / "request.yaml"
    for rid in ("A-1", "A-2"):
        snapshot.write_text(f"request_id: {rid}\nauthority: Court\nauthority_country: DE\ninstrument: court_order\n"
                            "received_at: 2026-03-02T09:00:00Z\noutcome: pending\nnotice: pending\n")
        assert cli(db, "disclosures", "log", str(snapshot))[0] == 0
    code, out, _ = cli(db, "disclosures", "head")
    head = json.loads(out)
    assert code == 0 and set(head) == {"entries", "head", "signature", "public_key"} and head["entries"] == 2
    assert public.read_text().split("\n")[1].endswith(head["public_key"])  # the same key, PEM and raw
    saved = tmp_path / "head.json"
    saved.write_text(out)
    import sqlalchemy as sa

    engine = sa.create_engine(db)
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM ledger_entry WHERE seq = 2")
    engine.dispose()
    monkeypatch.delenv("REGISTRY_LEDGER_KEY")
    code, out, _ = cli(db, "--json", "disclosures", "verify", "--public-key", str(public))
    assert code == 0 and json.loads(out)["ok"] is True
    code, out, _ = cli(db, "--json", "disclosures", "verify", "--public-key", str(public), "--anchor", str(saved))
    result = json.loads(out)
    assert code == 1 and (result["ok"], result["first_bad"], result["anchored"]) == (False, None, False)
    code, _, err = cli(db, "disclosures", "verify", "--anchor", str(snapshot))
    assert code == 2 and "not a saved `disclosures head`" in err
    monkeypatch.setenv("REGISTRY_LEDGER_ANCHOR_FILE", str(tmp_path / "anchor.jsonl"))
    monkeypatch.setenv("REGISTRY_LEDGER_KEY", str(key))
    code, _, err = cli(db, "disclosures", "head", "--json")
    assert code == 0 and [json.loads(line)["entries"] for line in (tmp_path / "anchor.jsonl").read_text().splitlines()] == [0, 1]
