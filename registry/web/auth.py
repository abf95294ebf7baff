"""Who is calling. The API (/api/) takes only ``Authorization: Bearer`` (never a cookie, so a
cross-site request cannot borrow a browser's sign-in); pages take only the session cookie, and
their form POSTs the session's CSRF token. Roles: service posts events; auditor reads; legal
reads and logs disclosures; admin does everything, including declaring manifests."""

from __future__ import annotations

import secrets
from typing import Annotated, Callable

from fastapi import Form, HTTPException, Request

from .sessions import SESSION_COOKIE, PageSession, find_session
from .tokens import TokenOwner, lookup_token

__all__ = ["READ", "LEGAL", "SERVICE", "ADMIN", "allow", "LoginRequired", "Forbidden", "page_user", "form_user",
           "is_https"]

READ = ("auditor", "legal", "admin")
LEGAL = ("legal", "admin")
SERVICE = ("service", "admin")
ADMIN = ("admin",)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return (header[7:].strip() or None) if header.lower().startswith("bearer ") else None


def allow(*roles: str) -> Callable[[Request], TokenOwner]:
    """An API dependency: 401 without a known bearer token, 403 when its role is not among ``roles``."""

    def check(request: Request) -> TokenOwner:
        token = _bearer(request)
        owner = lookup_token(request.app.state.engine, token) if token else None
        if owner is None:
            raise HTTPException(401, "a bearer token is required (Authorization: Bearer TOKEN)",
                                headers={"WWW-Authenticate": "Bearer"})
        if owner.role not in roles:
            raise HTTPException(403, f"the {owner.role} role may not do this")
        return owner

    return check


class LoginRequired(Exception):
    """No live session: the page answers with a redirect to sign-in."""


class Forbidden(Exception):
    """A signed-in user whose role may not do this, or a form without the right CSRF token."""

    def __init__(self, message: str, session: PageSession | None = None) -> None:
        super().__init__(message)
        self.session = session


def is_https(request: Request) -> bool:
    """HTTPS here or at the proxy in front (X-Forwarded-Proto): the cookies are then ``Secure``.
    Trusting the header is harmless: it can only make a cookie stricter."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def _session(request: Request, roles: tuple[str, ...]) -> PageSession:
    session = find_session(request.app.state.engine, request.cookies.get(SESSION_COOKIE))
    if session is None:
        raise LoginRequired()
    request.state.session = session  # for the error page's navigation
    if session.role not in roles:
        raise Forbidden(f"The {session.role} role may not open this page.", session)
    return session


def page_user(roles: tuple[str, ...] = READ) -> Callable[[Request], PageSession]:
    """A page dependency (sync: FastAPI runs its database lookup off the event loop)."""

    def check(request: Request) -> PageSession:
        return _session(request, roles)

    return check


def form_user(roles: tuple[str, ...] = READ) -> Callable[..., PageSession]:
    """A form POST dependency: a live session, its CSRF token in the form (else 403), a role."""

    def check(request: Request, csrf_token: Annotated[str, Form()] = "") -> PageSession:
        session = find_session(request.app.state.engine, request.cookies.get(SESSION_COOKIE))
        if session is None:
            raise LoginRequired()
        request.state.session = session
        if not secrets.compare_digest(csrf_token.encode(), session.csrf_token.encode()):
            raise Forbidden("The form's CSRF token is missing or wrong: reload the page and try again.", session)
        if session.role not in roles:
            raise Forbidden(f"The {session.role} role may not do this.", session)
        return session

    return check
