"""The disclosure ledger: every snapshot of an authority's request, append-only and hash-chained.

``hash = sha256(prev_hash || canonical JSON of the entry)``, the entry carrying its own sequence
number, so an edit, a deletion or a reordering of stored rows breaks the chain at that entry."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any, Iterable

import orjson
import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection, Engine

from .events import format_time
from .store import LedgerEntry, table

__all__ = ["GENESIS", "canonical", "entry_hash", "append_snapshots", "VerifyResult", "verify"]

GENESIS = "0" * 64
_LOCK_KEY = 730_115  # PostgreSQL advisory lock serialising appends (SQLite serialises writers itself)


def canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def entry_hash(prev_hash: str, body: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + body).hexdigest()


def append_snapshots(conn: Connection, snapshots: Iterable[tuple[datetime, dict[str, Any], str]]) -> list[dict[str, Any]]:
    """Append each (time, data, origin) snapshot inside the caller's transaction. A snapshot
    identical to its request's newest version is not a new version. ``origin`` (the event source,
    or who logged it) is part of the hashed entry. Returns {request_id, version, hash} each."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    last = conn.execute(sa.select(table(LedgerEntry).c.seq, table(LedgerEntry).c.hash).order_by(table(LedgerEntry).c.seq.desc()).limit(1)).first()
    seq, prev = (last[0], last[1]) if last else (0, GENESIS)
    out: list[dict[str, Any]] = []
    now = datetime.now(timezone.utc)
    for moment, data, origin in snapshots:
        request_id = data["request_id"]
        digest = hashlib.sha256(canonical(data)).hexdigest()
        versions = conn.execute(
            sa.select(table(LedgerEntry).c.content_hash, table(LedgerEntry).c.hash).where(table(LedgerEntry).c.request_id == request_id).order_by(table(LedgerEntry).c.seq)
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
        }])
        prev = digest_of_entry
        out.append({"request_id": request_id, "version": len(versions) + 1, "hash": prev})
    return out


class VerifyResult(BaseModel):
    ok: bool
    entries: int
    first_bad: str | None


def verify(engine: Engine) -> VerifyResult:
    """Recompute the chain from the genesis hash; the first entry that does not fit is named."""
    prev, expected_seq, count = GENESIS, 1, 0
    with engine.connect() as conn:
        for row in conn.execute(sa.select(table(LedgerEntry)).order_by(table(LedgerEntry).c.seq)):
            count += 1
            body = row.body.encode()
            try:
                stated = orjson.loads(body)
                intact = stated.get("seq") == row.seq == expected_seq and stated.get("request_id") == row.request_id
            except orjson.JSONDecodeError:
                intact = False
            if not intact or row.prev_hash != prev or entry_hash(prev, body) != row.hash:
                return VerifyResult(ok=False, entries=count, first_bad=row.request_id)
            prev, expected_seq = row.hash, expected_seq + 1
    return VerifyResult(ok=True, entries=count, first_bad=None)
