"""The signed, anchored ledger as an attacker with write access to the database would try it:
a deleted tail, a chain rebuilt and signed with another key, single-entry edits, deletions and
swaps, legacy unsigned entries; and an auditor verifying with only the public key.
Runs on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
import yaml

from registry.exceptions import ConfigError, LedgerError
from registry.ledger.chain import head, verify
from registry.ledger.disclosures import list_disclosures, log_disclosure
from registry.ledger.heads import entry_hash
from registry.ledger.keys import create_key
from registry.model.store import open_store

BASE = {"request_id": "R-1", "authority": "District Court of Harris County", "authority_country": "US",
        "instrument": "search_warrant", "received_at": "2026-03-02T09:00:00Z", "outcome": "pending", "notice": "pending"}
COLUMNS = "seq, request_id, snapshot_time, recorded_at, content_hash, body, prev_hash, hash, signature"


def snap(**changes: Any) -> str:
    return yaml.safe_dump({**BASE, **changes})


@pytest.fixture
def key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The ledger key, configured; its public half is in ``<key>.pub``."""
    path = tmp_path / "ledger.pem"
    create_key(path, tmp_path / "ledger.pem.pub")
    monkeypatch.setenv("REGISTRY_LEDGER_KEY", str(path))
    return path


@pytest.fixture
def anchor_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "anchor.jsonl"
    monkeypatch.setenv("REGISTRY_LEDGER_ANCHOR_FILE", str(path))
    return path


@pytest.fixture
def signed(declared: sa.Engine, key: Path) -> sa.Engine:
    for rid in ("R-1", "R-2", "R-3"):
        log_disclosure(declared, snap(request_id=rid))
    return declared


def _exec(engine: sa.Engine, *statements: str) -> None:
    with engine.begin() as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def _save_head(engine: sa.Engine, path: Path) -> str:
    path.write_text(orjson.dumps(head(engine).model_dump(), option=orjson.OPT_INDENT_2).decode())
    return str(path)


def test_an_intact_signed_ledger_verifies(signed: sa.Engine) -> None:
    result = verify(signed)
    assert (result.ok, result.entries, result.first_bad, result.anchored) == (True, 3, None, None)
    assert "signed by the configured key" in (result.reason or "") and "no anchor checked" in (result.reason or "")
    with signed.connect() as conn:
        signatures = conn.exec_driver_sql("SELECT signature FROM ledger_entry ORDER BY seq").scalars().all()
    assert all(s and len(s) == 88 for s in signatures) and len(set(signatures)) == 3


def test_without_a_key_verify_says_no_signature_was_checked(declared: sa.Engine) -> None:
    log_disclosure(declared, snap())
    result = verify(declared)
    assert result.ok and "no signature was checked" in (result.reason or "")
    unsigned = head(declared)
    assert (unsigned.entries, unsigned.signature, unsigned.public_key) == (1, None, None)


@pytest.mark.parametrize("keep", [2, 0])
def test_a_deleted_tail_is_caught_against_a_saved_head(signed: sa.Engine, tmp_path: Path, keep: int) -> None:
    saved = _save_head(signed, tmp_path / "head.json")
    assert verify(signed, anchor_file=saved).anchored is True
    _exec(signed, f"DELETE FROM ledger_entry WHERE seq > {keep}")
    assert verify(signed).ok  # what the chain and the signatures alone cannot see
    result = verify(signed, anchor_file=saved)
    assert (result.ok, result.entries, result.first_bad, result.anchored) == (False, keep, None, False)
    assert f"records 3 entries but the table holds {keep}" in (result.reason or "")


def test_a_deleted_tail_is_caught_against_the_anchor_file(declared: sa.Engine, key: Path, anchor_file: Path) -> None:
    for rid in ("R-1", "R-2", "R-3"):
        log_disclosure(declared, snap(request_id=rid))
    lines = [orjson.loads(line) for line in anchor_file.read_text().splitlines()]
    assert [line["entries"] for line in lines] == [0, 1, 2, 3]  # started with the empty ledger's head
    assert lines[-1] == head(declared).model_dump()
    assert len(anchor_file.read_text().splitlines()) == 4  # `head` appends nothing new
    assert verify(declared).anchored is True
    _exec(declared, "DELETE FROM ledger_entry WHERE seq = 3")
    result = verify(declared)
    assert (result.ok, result.first_bad, result.anchored) == (False, None, False)
    assert "the newest 1 were deleted" in (result.reason or "")
    # a new entry takes the deleted one's place: the anchor still holds the old head there
    log_disclosure(declared, snap(request_id="R-4"))
    result = verify(declared)
    assert (result.ok, result.first_bad, result.anchored) == (False, "R-4", False)
    assert "entry 3 (R-4) is not the one" in (result.reason or "")
    _exec(declared, "DELETE FROM ledger_entry")
    assert verify(declared).model_dump(exclude={"reason"}) == {"ok": False, "entries": 0, "first_bad": None, "anchored": False}
    with pytest.raises(LedgerError):
        head(declared)  # no head is signed over a ledger that does not verify


def test_concurrent_writers_keep_one_anchor_line_per_entry(declared: sa.Engine, key: Path, anchor_file: Path) -> None:
    import threading

    def write(prefix: str) -> None:
        for i in range(4):
            log_disclosure(declared, snap(request_id=f"{prefix}-{i}"))

    threads = [threading.Thread(target=write, args=(p,)) for p in ("A", "B", "C")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [orjson.loads(line)["entries"] for line in anchor_file.read_text().splitlines()] == list(range(13))
    result = verify(declared)
    assert (result.ok, result.entries, result.anchored) == (True, 12, True)


def test_two_appends_in_one_rolled_back_transaction_anchor_nothing(declared: sa.Engine, key: Path, anchor_file: Path) -> None:
    from datetime import datetime, timezone

    from registry.ledger.chain import append_snapshots

    log_disclosure(declared, snap())
    before = anchor_file.read_text()
    with pytest.raises(RuntimeError), declared.begin() as conn:
        append_snapshots(conn, [(datetime.now(timezone.utc), {**BASE, "request_id": "X-1"}, "test")])
        append_snapshots(conn, [(datetime.now(timezone.utc), {**BASE, "request_id": "X-2"}, "test")])
        raise RuntimeError("rolled back")
    assert anchor_file.read_text() == before
    log_disclosure(declared, snap(request_id="R-2"))
    assert verify(declared).ok


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_a_deleted_or_emptied_anchor_file_is_reported(declared: sa.Engine, key: Path, anchor_file: Path, damage: str) -> None:
    log_disclosure(declared, snap())
    log_disclosure(declared, snap(request_id="R-2"))
    assert verify(declared).anchored is True
    if damage == "delete":
        anchor_file.unlink()
    else:
        anchor_file.write_text("")
    result = verify(declared)
    assert (result.ok, result.anchored, result.first_bad) == (False, False, None)
    assert f"is {'missing' if damage == 'delete' else 'empty'} while the table holds 2 entries" in (result.reason or "")
    # issue 21: never the advice to re-anchor, which would hide a tail deleted with the file
    assert "disclosures head" not in (result.reason or "") and "hide any entry deleted" in (result.reason or "")
    log_disclosure(declared, snap(request_id="R-3"))  # a writer does not re-create or refill the file
    assert (anchor_file.read_text() if anchor_file.exists() else None) == ("" if damage == "truncate" else None)
    assert head(declared).entries == 3  # the operator's `disclosures head` (re)starts it, over a ledger that verifies
    assert verify(declared).anchored is True


def test_a_chain_rebuilt_and_signed_with_another_key_fails(signed: sa.Engine, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    saved = _save_head(signed, tmp_path / "head.json")
    # the attacker logs the story they prefer into a ledger of their own, with their own key...
    create_key(tmp_path / "other.pem")
    monkeypatch.setenv("REGISTRY_LEDGER_KEY", str(tmp_path / "other.pem"))
    forged = open_store(f"sqlite:///{tmp_path / 'forged.db'}")
    for rid in ("R-1", "R-2", "R-3"):
        log_disclosure(forged, snap(request_id=rid, outcome="rejected" if rid == "R-2" else "pending"))
    assert verify(forged).ok
    with forged.connect() as conn:
        rows = [dict(r._mapping) for r in conn.exec_driver_sql(f"SELECT {COLUMNS} FROM ledger_entry ORDER BY seq")]
    # ...and copies it over the table: a consistent chain, every signature valid for their key
    with signed.begin() as conn:
        conn.exec_driver_sql("DELETE FROM ledger_entry")
        conn.execute(sa.text(f"INSERT INTO ledger_entry ({COLUMNS}) VALUES ({', '.join(':' + c for c in COLUMNS.split(', '))})"), rows)
    monkeypatch.setenv("REGISTRY_LEDGER_KEY", str(tmp_path / "ledger.pem"))
    result = verify(signed)
    assert (result.ok, result.entries, result.first_bad) == (False, 1, "R-1")
    assert "signature the configured public key does not verify" in (result.reason or "")
    assert verify(signed, anchor_file=saved).ok is False


def _edit(engine: sa.Engine, seq: int) -> None:
    _exec(engine, f"UPDATE ledger_entry SET body = REPLACE(body, 'Harris', 'Harrls') WHERE seq = {seq}")


def _rehash(engine: sa.Engine, seq: int) -> None:
    """Edit an entry and recompute its hash and every later one: only the signatures can tell."""
    with engine.begin() as conn:
        rows = conn.exec_driver_sql(f"SELECT seq, prev_hash, body FROM ledger_entry WHERE seq >= {seq} ORDER BY seq").all()
        prev = rows[0].prev_hash
        for row in rows:
            body = row.body.replace("pending", "rejected") if row.seq == seq else row.body
            prev = entry_hash(prev, body.encode())
            conn.execute(sa.text("UPDATE ledger_entry SET body = :b, prev_hash = :p, hash = :h WHERE seq = :s"),
                         {"b": body, "p": rows[0].prev_hash if row.seq == seq else last, "h": prev, "s": row.seq})
            last = prev


def _delete(engine: sa.Engine, seq: int) -> None:
    _exec(engine, f"DELETE FROM ledger_entry WHERE seq = {seq}")


def _swap(engine: sa.Engine, seq: int) -> None:
    _exec(engine, f"UPDATE ledger_entry SET seq = 99 WHERE seq = {seq}", f"UPDATE ledger_entry SET seq = {seq} WHERE seq = {seq + 1}",
          f"UPDATE ledger_entry SET seq = {seq + 1} WHERE seq = 99")


@pytest.mark.parametrize(("attack", "seq", "named", "read"), [
    (_edit, 1, "R-1", 1), (_edit, 2, "R-2", 2), (_edit, 3, "R-3", 3),
    (_rehash, 1, "R-1", 1), (_rehash, 2, "R-2", 2), (_rehash, 3, "R-3", 3),
    (_delete, 1, "R-2", 1), (_delete, 2, "R-3", 2),
    (_swap, 1, "R-2", 1), (_swap, 2, "R-3", 2),
])
def test_each_single_entry_attack_names_the_entry(signed: sa.Engine, attack: Any, seq: int, named: str, read: int) -> None:
    attack(signed, seq)
    result = verify(signed)
    assert (result.ok, result.entries, result.first_bad) == (False, read, named)
    assert result.reason and f"entry {read} ({named})" in result.reason


def test_an_auditor_verifies_with_only_the_public_key(signed: sa.Engine, key: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    saved = _save_head(signed, tmp_path / "head.json")
    monkeypatch.delenv("REGISTRY_LEDGER_KEY")
    public = str(key) + ".pub"
    result = verify(signed, anchor_file=saved, public_key_file=public)
    assert (result.ok, result.anchored) == (True, True) and "signed by the configured key" in (result.reason or "")
    monkeypatch.setenv("REGISTRY_LEDGER_PUBLIC_KEY", public)
    assert verify(signed).ok and "signed by the configured key" in (verify(signed).reason or "")
    # the base64 public key printed in a head works as the key file too
    (tmp_path / "head.key").write_text(orjson.loads(Path(saved).read_text())["public_key"])
    assert verify(signed, public_key_file=str(tmp_path / "head.key")).ok
    create_key(tmp_path / "stranger.pem", tmp_path / "stranger.pub")
    wrong = verify(signed, public_key_file=str(tmp_path / "stranger.pub"))
    assert (wrong.ok, wrong.first_bad) == (False, "R-1")
    # a saved head whose signature the auditor's key did not make is not an anchor
    forged = orjson.loads(Path(saved).read_text())
    forged["signature"] = orjson.loads(Path(saved).read_text())["signature"][::-1]
    (tmp_path / "forged.json").write_text(orjson.dumps(forged).decode())
    assert verify(signed, anchor_file=str(tmp_path / "forged.json"), public_key_file=public).anchored is False


def test_entries_logged_before_signing_are_reported_unsigned(declared: sa.Engine, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    log_disclosure(declared, snap(request_id="OLD-1"))
    log_disclosure(declared, snap(request_id="OLD-2"))
    create_key(tmp_path / "k.pem")
    monkeypatch.setenv("REGISTRY_LEDGER_KEY", str(tmp_path / "k.pem"))
    undeclared = verify(declared)  # unsigned entries are not trusted until the auditor says how many predate signing
    assert (undeclared.ok, undeclared.first_bad) == (False, "OLD-1") and "is unsigned" in (undeclared.reason or "")
    only_unsigned = verify(declared, legacy=2)
    assert only_unsigned.ok and "none is signed" in (only_unsigned.reason or "")
    monkeypatch.setenv("REGISTRY_LEDGER_LEGACY_UNSIGNED", "2")
    log_disclosure(declared, snap(request_id="NEW-1"))
    result = verify(declared)
    assert result.ok and "the first 2 were declared as logged before signing" in (result.reason or "")
    assert verify(declared, legacy=1).first_bad == "OLD-2"
    monkeypatch.delenv("REGISTRY_LEDGER_KEY")
    with pytest.raises(ConfigError):  # an unsigned entry after signed ones would fail verification: refused
        log_disclosure(declared, snap(request_id="NEW-2"))
    monkeypatch.setenv("REGISTRY_LEDGER_KEY", str(tmp_path / "k.pem"))
    log_disclosure(declared, snap(request_id="NEW-2"))
    _exec(declared, "UPDATE ledger_entry SET signature = NULL WHERE seq = 4")  # a stripped signature
    stripped = verify(declared)
    assert (stripped.ok, stripped.first_bad) == (False, "NEW-2") and "unsigned but follows signed" in (stripped.reason or "")


@pytest.mark.empty_store
def test_the_migration_keeps_old_entries_as_unsigned(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store at revision 0001 (before signatures) with a ledger entry: after the upgrade the
    entry is there, unsigned, and reported so."""
    from registry.ledger.heads import GENESIS, canonical

    from .helpers import store_at

    old = store_at(db_url, "0001")
    body = canonical({"seq": 1, "request_id": "OLD-1", "snapshot_time": "2026-01-01T00:00:00Z",
                      "recorded_at": "2026-01-01T00:00:00Z", "origin": "file:legacy", "data": {**BASE, "request_id": "OLD-1"}})
    with old.begin() as conn:
        conn.execute(sa.text("INSERT INTO ledger_entry (seq, request_id, snapshot_time, recorded_at, content_hash, body, prev_hash, hash) "
                             "VALUES (1, 'OLD-1', :t, :t, 'x', :b, :p, :h)"),
                     {"t": "2026-01-01 00:00:00", "b": body.decode(), "p": GENESIS, "h": entry_hash(GENESIS, body)})
    old.dispose()
    create_key(tmp_path / "k.pem")
    monkeypatch.setenv("REGISTRY_LEDGER_KEY", str(tmp_path / "k.pem"))
    engine = open_store(db_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT signature FROM ledger_entry").scalar_one() is None
    assert not verify(engine).ok
    result = verify(engine, legacy=1)
    assert result.ok and "none is signed" in (result.reason or "")


def test_a_rewrite_with_every_signature_stripped_fails(declared: sa.Engine, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """An attacker edits an entry, recomputes every hash and removes all signatures, hoping the
    ledger passes as one logged before signing: with the key configured it fails at entry 1."""
    from registry.ledger.heads import GENESIS, canonical

    create_key(tmp_path / "k.pem")
    monkeypatch.setenv("REGISTRY_LEDGER_KEY", str(tmp_path / "k.pem"))
    for i in range(3):
        log_disclosure(declared, snap(request_id=f"R-{i}"))
    with declared.begin() as conn:
        rows = conn.exec_driver_sql("SELECT seq, body FROM ledger_entry ORDER BY seq").all()
        prev = GENESIS
        for seq, body in rows:
            entry = orjson.loads(body)
            if seq == 2:
                entry["data"]["outcome"] = "rejected"
            new = canonical(entry)
            digest = entry_hash(prev, new)
            conn.execute(sa.text("UPDATE ledger_entry SET body = :b, prev_hash = :p, hash = :h, signature = NULL WHERE seq = :s"),
                         {"b": new.decode(), "p": prev, "h": digest, "s": seq})
            prev = digest
    result = verify(declared)
    assert (result.ok, result.first_bad) == (False, "R-0")
    with pytest.raises(LedgerError):
        head(declared)  # and no head is signed for it


def test_disclosure_rows_carry_their_warnings(declared: sa.Engine) -> None:
    from datetime import date

    log_disclosure(declared, snap(request_id="US-1", instrument="subpoena", notice="delayed", notice_due="2026-04-01"))
    log_disclosure(declared, snap(request_id="DE-1", authority="Amtsgericht Berlin", authority_country="DE", instrument="court_order"))
    rows, warnings = list_disclosures(declared, today=date(2026, 4, 15))
    by_id = {r.request_id: r.warnings for r in rows}
    assert by_id["DE-1"] == []
    assert [w.split(":")[0] for w in by_id["US-1"]] == ["US-1", "US-1"]
    assert "GDPR Art. 48" in by_id["US-1"][0] and "overdue" in by_id["US-1"][1]
    assert warnings == by_id["US-1"]
    assert list_disclosures(declared, today=date(2026, 3, 15))[0][1].warnings == [by_id["US-1"][0]]


def test_two_deleted_entries_are_counted_from_the_largest_anchor(declared: sa.Engine, key: Path, anchor_file: Path) -> None:
    """Review of issue 21: the anchor file holds heads of 1, 2 and 3 entries; with 2 deleted the
    message is about the largest head past the table (3), not the first one (2)."""
    for rid in ("R-1", "R-2", "R-3"):
        log_disclosure(declared, snap(request_id=rid))
    _exec(declared, "DELETE FROM ledger_entry WHERE seq > 1")
    result = verify(declared)
    assert (result.ok, result.entries, result.first_bad, result.anchored) == (False, 1, None, False)
    assert "records 3 entries but the table holds 1: the newest 2 were deleted" in (result.reason or ""), result.reason


def test_first_bad_is_the_request_the_signed_body_names(signed: sa.Engine) -> None:
    """Review of issue 21: the request_id column is outside the hash; an edited column makes the
    entry not fit, and verify names the request its body (what was signed) states."""
    _exec(signed, "UPDATE ledger_entry SET request_id = 'R-9' WHERE seq = 2")
    result = verify(signed)
    assert (result.ok, result.entries, result.first_bad) == (False, 2, "R-2")
    assert "entry 2 (R-2) does not fit" in (result.reason or "")
