"""Bearer tokens for the web service: created by ``registry tokens create``, stored hashed."""

from __future__ import annotations

import difflib
import hashlib
import secrets
from datetime import datetime, timedelta, timezone
from typing import Literal

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

from registry.exceptions import InputError
from registry.model.tables import ApiToken, WebSession
from registry.model.times import format_time

__all__ = ["ROLES", "Role", "CreatedToken", "TokenOwner", "TokenInfo", "Revoked", "create_token", "lookup_token", "list_tokens",
           "revoke_token"]

Role = Literal["service", "auditor", "legal", "admin"]
ROLES: tuple[str, ...] = ("service", "auditor", "legal", "admin")


class CreatedToken(BaseModel):
    token: str
    role: str
    name: str


class TokenOwner(BaseModel):
    role: str
    name: str
    token_id: int | None = Field(default=None, exclude=True)


class TokenInfo(BaseModel):
    """A token as ``tokens list`` shows it: never the token, nor its hash."""

    name: str
    role: str
    created_at: str
    last_used_at: str | None
    revoked: bool


class Revoked(BaseModel):
    name: str
    revoked: bool


_T = ApiToken


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(engine: Engine, role: str, name: str | None = None) -> CreatedToken:
    if role not in ROLES:
        raise InputError(f"must be one of {', '.join(ROLES)}", "--role")
    token = "drt_" + secrets.token_urlsafe(32)
    name = name or f"{role}-{secrets.token_hex(3)}"
    with engine.begin() as conn:
        # names are how tokens are revoked: two live tokens of one name could not be told apart
        if conn.execute(sa.select(_T.c.id).where(_T.c.name == name, _T.c.revoked_at.is_(None))).first() is not None:
            raise InputError(f"a live token is already named {name!r}: choose another name, or revoke it first", "--name")
        conn.execute(sa.insert(ApiToken), [{"token_hash": _hash(token), "role": role, "name": name,
                                            "created_at": datetime.now(timezone.utc)}])
    return CreatedToken(token=token, role=role, name=name)


_USE_STEP = timedelta(minutes=1)  # last_used_at to the minute: most requests only read


def lookup_token(engine: Engine, token: str) -> TokenOwner | None:
    """The owner of a live token; None for an unknown or revoked one."""
    with engine.connect() as conn:
        row = conn.execute(sa.select(_T.c.id, _T.c.role, _T.c.name, _T.c.last_used_at)
                           .where(_T.c.token_hash == _hash(token), _T.c.revoked_at.is_(None))).first()
    if row is None:
        return None
    now = datetime.now(timezone.utc)
    if row.last_used_at is None or _aware(row.last_used_at) <= now - _USE_STEP:
        with engine.begin() as conn:
            conn.execute(sa.update(ApiToken).where(_T.c.id == row.id).values(last_used_at=now))
    return TokenOwner(role=row.role, name=row.name, token_id=row.id)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def list_tokens(engine: Engine) -> list[TokenInfo]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(_T).order_by(_T.c.name, _T.c.created_at, _T.c.id)).all()
    return [TokenInfo(name=r.name, role=r.role, created_at=format_time(_aware(r.created_at)),
                      last_used_at=format_time(_aware(r.last_used_at)) if r.last_used_at else None,
                      revoked=r.revoked_at is not None) for r in rows]


def revoke_token(engine: Engine, name: str) -> Revoked:
    """Revoke every live token named ``name`` and end their page sessions in the same
    transaction: a revoked token opens nothing from the next request on."""
    now = datetime.now(timezone.utc)
    s = WebSession
    with engine.begin() as conn:
        ids = [i for (i,) in conn.execute(sa.select(_T.c.id).where(_T.c.name == name, _T.c.revoked_at.is_(None)))]
        if not ids:
            names = [n for (n,) in conn.execute(sa.select(_T.c.name).distinct())]
            if name in names:
                raise InputError(f"the token {name!r} is already revoked")
            close = difflib.get_close_matches(name, names, n=3)
            raise InputError(f"no token named {name!r}" + (f" (did you mean {', '.join(close)}?)" if close else ""), "NAME")
        conn.execute(sa.update(ApiToken).where(_T.c.id.in_(ids)).values(revoked_at=now))
        # sessions from before tokens were recorded with them name no token: ended by name
        conn.execute(sa.delete(WebSession).where(sa.or_(s.c.token_id.in_(ids), sa.and_(s.c.token_id.is_(None), s.c.name == name))))
    return Revoked(name=name, revoked=True)
