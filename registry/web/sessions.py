"""Server-side sessions of the pages: a random session id in the cookie (never the bearer token),
kept as its sha256, with a per-session CSRF token and a 12-hour lifetime."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta, timezone

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from registry.model.tables import ApiToken, WebSession

from .tokens import TokenOwner

__all__ = ["SESSION_COOKIE", "LIFETIME", "PageSession", "start_session", "find_session", "end_session"]

SESSION_COOKIE = "registry_session"
LIFETIME = timedelta(hours=12)  # one working day: a forgotten browser does not stay signed in overnight
_T = WebSession
_TOKEN = ApiToken


class PageSession(BaseModel):
    role: str
    name: str
    csrf_token: str


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def start_session(engine: Engine, owner: TokenOwner) -> tuple[str, PageSession]:
    """A new session for a signed-in token owner: (the id for the cookie, the session)."""
    session_id, now = secrets.token_urlsafe(32), datetime.now(timezone.utc)
    session = PageSession(role=owner.role, name=owner.name, csrf_token=secrets.token_urlsafe(32))
    with engine.begin() as conn:
        conn.execute(sa.delete(WebSession).where(_T.c.expires_at < now))  # sweep: expired rows are of no use
        conn.execute(sa.insert(WebSession), [{"id_hash": _hash(session_id), "role": owner.role, "name": owner.name,
                                             "csrf_token": session.csrf_token, "created_at": now, "expires_at": now + LIFETIME,
                                             "token_id": owner.token_id}])
    return session_id, session


def find_session(engine: Engine, session_id: str | None) -> PageSession | None:
    """The live session of a cookie value; None when unknown, ended or expired."""
    if not session_id:
        return None
    # the token is checked on every read, not only at sign-in: /login looks the token up and starts
    # the session in two transactions, and a revoke between them must still end the session
    with engine.connect() as conn:
        row = conn.execute(sa.select(_T.c.role, _T.c.name, _T.c.csrf_token, _T.c.expires_at)
                           .select_from(_T.outerjoin(_TOKEN, _TOKEN.c.id == _T.c.token_id))
                           .where(_T.c.id_hash == _hash(session_id),
                                  sa.or_(_T.c.token_id.is_(None), _TOKEN.c.revoked_at.is_(None)))).first()
    if row is None or _aware(row.expires_at) <= datetime.now(timezone.utc):
        return None
    return PageSession(role=row.role, name=row.name, csrf_token=row.csrf_token)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def end_session(engine: Engine, session_id: str | None) -> None:
    if session_id:
        with engine.begin() as conn:
            conn.execute(sa.delete(WebSession).where(_T.c.id_hash == _hash(session_id)))
