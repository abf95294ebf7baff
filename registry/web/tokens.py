"""Bearer tokens for the web service: created by ``registry tokens create``, stored hashed."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timezone
from typing import Literal

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from registry.exceptions import InputError
from registry.model.store import ApiToken, table

__all__ = ["ROLES", "Role", "CreatedToken", "TokenOwner", "create_token", "lookup_token"]

Role = Literal["service", "auditor", "legal", "admin"]
ROLES: tuple[str, ...] = ("service", "auditor", "legal", "admin")


class CreatedToken(BaseModel):
    token: str
    role: str
    name: str


class TokenOwner(BaseModel):
    role: str
    name: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(engine: Engine, role: str, name: str | None = None) -> CreatedToken:
    if role not in ROLES:
        raise InputError(f"must be one of {', '.join(ROLES)}", "--role")
    token = "drt_" + secrets.token_urlsafe(32)
    name = name or f"{role}-{secrets.token_hex(3)}"
    with engine.begin() as conn:
        conn.execute(sa.insert(ApiToken), [{"token_hash": _hash(token), "role": role, "name": name,
                                            "created_at": datetime.now(timezone.utc)}])
    return CreatedToken(token=token, role=role, name=name)


def lookup_token(engine: Engine, token: str) -> TokenOwner | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(table(ApiToken).c.role, table(ApiToken).c.name).where(table(ApiToken).c.token_hash == _hash(token))).first()
    return TokenOwner(role=row.role, name=row.name) if row else None
