"""The ledger's heads: the canonical bytes of an entry, its hash, the signed head ``{entries,
head}`` and whether a stored row is the entry that belongs at its place. Both the chain and the
anchors need these; neither needs the other to compute them."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
from pydantic import BaseModel, Field

from .keys import public_text, sign, signing_key

__all__ = ["GENESIS", "canonical", "entry_hash", "head_message", "entry_fits", "Head", "signed_head"]


GENESIS = "0" * 64


def canonical(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def entry_hash(prev_hash: str, body: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + body).hexdigest()


def head_message(entries: int, head_hash: str) -> bytes:
    """What a head's signature covers: the count and the newest hash. JSON, so it can never be
    mistaken for an entry signature (which covers the 64 hex characters of a hash)."""
    return canonical({"entries": entries, "head": head_hash})


def entry_fits(row: Any, prev: str, expected_seq: int) -> bool:
    """Whether a stored row is the entry that belongs at ``expected_seq`` after ``prev``."""
    body = row.body.encode()
    try:
        stated = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return (isinstance(stated, dict) and stated.get("seq") == row.seq == expected_seq and stated.get("request_id") == row.request_id
            and row.prev_hash == prev and entry_hash(prev, body) == row.hash)


class Head(BaseModel):
    """``disclosures head``: the newest entry's hash and the number of entries, signed."""

    entries: int = Field(description="Entries in the ledger")
    head: str = Field(description="Hash of the newest entry (64 zeros for an empty ledger)")
    signature: str | None = Field(description="Ed25519 signature (base64) of {entries, head} by the ledger key; null without a key")
    public_key: str | None = Field(description="The signing key's public half (base64 of the 32 raw bytes); null without a key")


def signed_head(entries: int, head_hash: str) -> Head:
    key = signing_key()
    if key is None:
        return Head(entries=entries, head=head_hash, signature=None, public_key=None)
    return Head(entries=entries, head=head_hash, signature=sign(key, head_message(entries, head_hash)),
                public_key=public_text(key.public_key()))
