"""The disclosure ledger: every snapshot of an authority's request, append-only, hash-chained and
signed.

``hash = sha256(prev_hash || canonical JSON of the entry)``, the entry carrying its own sequence
number, so an edit, a deletion or a reordering of stored rows breaks the chain at that entry. Each
hash is signed with the ledger key (Ed25519, :mod:`registry.ledger.keys`), so recomputing every
hash after an edit fails the signatures. A deleted tail leaves a valid shorter chain: only an
anchor kept outside the database (a saved head, the anchor file of :mod:`registry.ledger.anchors`) sees it."""

from __future__ import annotations

import hashlib
import os
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Iterable

import orjson
import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection, Engine

from registry.exceptions import ConfigError, LedgerError
from registry.model.tables import LedgerEntry
from registry.model.times import format_time

from .anchors import anchor_new_heads, anchor_path, anchor_started, check_anchors, load_anchors
from .heads import GENESIS, Head, canonical, entry_fits, entry_hash, signed_head
from .keys import sign, signature_valid, signing_key, verifying_key

if TYPE_CHECKING:  # the key type only: cryptography loads when a key is used
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

__all__ = ["append_snapshots", "head", "VerifyResult", "verify"]

_LOCK_KEY = 730_115  # PostgreSQL advisory lock serialising appends
_T = LedgerEntry


def append_snapshots(conn: Connection, snapshots: Iterable[tuple[datetime, dict[str, Any], str]]) -> list[dict[str, Any]]:
    """Append each (time, data, origin) snapshot inside the caller's transaction. A snapshot
    identical to its request's newest version is not a new version. ``origin`` (the event source,
    or who logged it) is part of the hashed entry. Each new entry's hash is signed with
    REGISTRY_LEDGER_KEY when set. Returns {request_id, version, hash} each."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    elif conn.dialect.name == "sqlite":
        # pysqlite begins the transaction at the first write, so the newest seq read below would be
        # read outside it: a write that changes nothing takes SQLite's write lock first
        conn.exec_driver_sql("UPDATE ledger_entry SET seq = seq WHERE 0")
    key = signing_key()
    last = conn.execute(sa.select(_T.c.seq, _T.c.hash, _T.c.signature).order_by(_T.c.seq.desc()).limit(1)).first()
    if key is None and last is not None and last.signature is not None:
        # an unsigned entry after signed ones fails verification: refuse it instead of writing it
        raise ConfigError("the ledger is signed but REGISTRY_LEDGER_KEY is not set: set it to the ledger key's PEM file")
    # heads committed by earlier writers (e.g. a worker whose process ended before anchoring); not
    # a second time in one transaction, whose first rows are not committed (a rollback would leave
    # the anchor file holding heads that never existed)
    transaction, seen = conn.get_transaction(), conn.info.get("ledger_appending_in")
    if seen is None or seen() is not transaction:
        anchor_new_heads(conn, create=last is None)
        conn.info["ledger_appending_in"] = weakref.ref(transaction) if transaction is not None else None
    seq, prev = (last[0], last[1]) if last else (0, GENESIS)
    out: list[dict[str, Any]] = []
    now = datetime.now(timezone.utc)
    for moment, data, origin in snapshots:
        request_id = data["request_id"]
        digest = hashlib.sha256(canonical(data)).hexdigest()
        versions = conn.execute(
            sa.select(_T.c.content_hash, _T.c.hash).where(_T.c.request_id == request_id).order_by(_T.c.seq)
        ).all()
        if versions and versions[-1][0] == digest:
            out.append({"request_id": request_id, "version": len(versions), "hash": versions[-1][1]})
            continue
        seq += 1
        body = canonical({"seq": seq, "request_id": request_id, "snapshot_time": format_time(moment),
                          "recorded_at": format_time(now), "origin": origin, "data": data})
        digest_of_entry = entry_hash(prev, body)
        conn.execute(sa.insert(LedgerEntry), [{
            "seq": seq, "request_id": request_id, "snapshot_time": moment, "recorded_at": now,
            "content_hash": digest, "body": body.decode(), "prev_hash": prev, "hash": digest_of_entry,
            "signature": sign(key, digest_of_entry.encode("ascii")) if key is not None else None,
        }])
        prev = digest_of_entry
        out.append({"request_id": request_id, "version": len(versions) + 1, "hash": prev})
    return out


def head(engine: Engine, start_anchor: bool = True) -> Head:
    """The signed head of a ledger that verifies (with the configured anchor file); the anchor
    file, when set, receives it. A ledger that does not verify gets no head: signing one would
    vouch for the tampering. ``start_anchor``: a missing anchor file is started here (the
    operator's ``disclosures head``; the web service never re-creates one)."""

    configured = anchor_path()
    starting = start_anchor and configured is not None and not anchor_started(configured)
    check = verify(engine, configured_anchor=not starting)
    if not check.ok:
        raise LedgerError(f"the ledger does not verify, no head is signed: {check.reason}")
    anchor_new_heads(engine, create=starting)
    with engine.connect() as conn:
        last = conn.execute(sa.select(_T.c.seq, _T.c.hash).order_by(_T.c.seq.desc()).limit(1)).first()
    return signed_head(last.seq, last.hash) if last else signed_head(0, GENESIS)


class VerifyResult(BaseModel):
    ok: bool = Field(description="Chain, signatures and anchors all hold")
    entries: int = Field(description="Entries read (up to and including the first bad one)")
    first_bad: str | None = Field(description="request_id of the first entry that does not fit; null when none, or when the tail is missing")
    anchored: bool | None = Field(description="null: no anchor checked; true: every anchored head is in the table; false: one is not")
    reason: str | None = Field(description="What was checked and, when not ok, what failed")


@dataclass
class _Chain:
    """The chain walk: the valid prefix's hashes and request ids, and the first problem."""

    hashes: list[str] = field(default_factory=list)
    request_ids: list[str] = field(default_factory=list)
    first_bad: str | None = None
    problem: str | None = None
    unsigned: int = 0  # unsigned entries before the first signed one (logged before signing existed)
    signed: int = 0


def _walk(engine: Engine, key: Ed25519PublicKey | None) -> _Chain:
    chain = _Chain()
    prev = GENESIS
    with engine.connect() as conn:
        for row in conn.execute(sa.select(_T).order_by(_T.c.seq)):
            n = len(chain.hashes) + 1
            where = f"entry {n} ({_stated_request_id(row)})"
            if not entry_fits(row, prev, n):
                chain.problem = f"{where} does not fit the hash chain: edited, moved, or an entry before it was deleted"
            elif key is not None and row.signature is None and chain.signed:
                chain.problem = f"{where} is unsigned but follows signed entries"
            elif key is not None and row.signature is not None and not signature_valid(key, row.signature, row.hash.encode("ascii")):
                chain.problem = f"{where} has a signature the configured public key does not verify"
            if chain.problem:
                chain.first_bad = _stated_request_id(row)
                return chain
            if row.signature is None:
                chain.unsigned += 1
            else:
                chain.signed += 1
            chain.hashes.append(row.hash)
            chain.request_ids.append(row.request_id)
            prev = row.hash
    return chain


def _stated_request_id(row: Any) -> str:
    """The request id the entry's body states: the ``request_id`` column beside it is outside the
    hash, so an edited column must not decide which request verify names. The column only when
    the body states none (it is not even JSON)."""
    try:
        stated = orjson.loads(row.body)
    except orjson.JSONDecodeError:
        return str(row.request_id)
    found = stated.get("request_id") if isinstance(stated, dict) else None
    return found if isinstance(found, str) else str(row.request_id)


LEGACY_ENV = "REGISTRY_LEDGER_LEGACY_UNSIGNED"


def legacy_unsigned(given: int | None = None) -> int:
    """How many leading entries the auditor accepts as logged before signing existed: the
    ``--legacy-unsigned`` option, else REGISTRY_LEDGER_LEGACY_UNSIGNED, else 0. It is a number
    kept outside the database (from a head saved when signing began): an attacker who rewrites
    the table and strips every signature must not be able to pass the rewrite off as legacy."""
    if given is not None:
        return given
    raw = os.environ.get(LEGACY_ENV, "").strip()
    if not raw:
        return 0
    if not raw.isdigit():
        raise ConfigError(f"{LEGACY_ENV} must be a whole number of entries, not {raw!r}")
    return int(raw)


def verify(engine: Engine, anchor_file: str | None = None, public_key_file: str | None = None,
           configured_anchor: bool = True, legacy: int | None = None) -> VerifyResult:
    """Recompute the chain from the genesis hash and check every signature with the configured
    public key; then check each anchored head (``anchor_file``, and REGISTRY_LEDGER_ANCHOR_FILE
    when set) against the table. The first entry that does not fit is named. With a key, an
    unsigned entry passes only among the first ``legacy`` entries (:func:`legacy_unsigned`)."""

    key = verifying_key(public_key_file)
    anchors = load_anchors(anchor_file, configured_anchor)
    chain = _walk(engine, key)
    allowed = legacy_unsigned(legacy)
    if key is not None and chain.problem is None and chain.unsigned > allowed:
        n = allowed + 1
        chain.first_bad = chain.request_ids[allowed]
        chain.problem = (f"entry {n} ({chain.first_bad}) is unsigned and a ledger key is configured: "
                         f"{'no' if not allowed else f'only {allowed}'} entries were declared as logged before signing "
                         f"(--legacy-unsigned N or {LEGACY_ENV}, from a head saved when signing began)")
        del chain.hashes[allowed:], chain.request_ids[allowed:]
    read = len(chain.hashes) + (1 if chain.problem else 0)
    anchored, anchor_bad, anchor_problem = check_anchors(anchors, chain.hashes, chain.request_ids, key, chain.problem is None)
    ok = chain.problem is None and anchored is not False
    if not ok:
        return VerifyResult(ok=False, entries=read, first_bad=chain.first_bad or anchor_bad, anchored=anchored,
                            reason=chain.problem or anchor_problem)
    return VerifyResult(ok=True, entries=read, first_bad=None, anchored=anchored,
                        reason=_summary(chain, key is not None, anchors.describe() if anchored else None))


def _summary(chain: _Chain, keyed: bool, anchors: str | None) -> str:
    n = len(chain.hashes)
    if not keyed:
        text = f"{n} entries chained; no signature was checked: no ledger key is configured"
    elif chain.unsigned and chain.signed:
        text = (f"{n} entries chained; the {chain.signed} newest are signed by the configured key; the first {chain.unsigned} "
                "were declared as logged before signing and are unsigned (only the chain and the later signatures cover them)")
    elif chain.unsigned:
        text = f"{n} entries chained; none is signed (all {n} declared as logged before signing), so no signature was checked"
    else:
        text = f"{n} entries chained and signed by the configured key"
    return text + (f"; {anchors}" if anchors else "; no anchor checked, so a deleted tail would not be seen")
