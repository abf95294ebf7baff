"""Bearer-token roles. service: post events; auditor: read; legal: read and log disclosures;
admin: everything, including declaring manifests. Pages may use the token from a login cookie."""

from __future__ import annotations

from typing import Callable

from fastapi import HTTPException, Request

from ..tokens import TokenOwner, lookup_token

__all__ = ["COOKIE", "READ", "LEGAL", "SERVICE", "ADMIN", "owner_of", "allow"]

COOKIE = "registry_token"
READ = ("auditor", "legal", "admin")
LEGAL = ("legal", "admin")
SERVICE = ("service", "admin")
ADMIN = ("admin",)


def token_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    return request.cookies.get(COOKIE)


def owner_of(request: Request) -> TokenOwner | None:
    token = token_of(request)
    return lookup_token(request.app.state.engine, token) if token else None


def allow(*roles: str) -> Callable[[Request], TokenOwner]:
    """A dependency: 401 without a known token, 403 when its role is not among ``roles``."""

    def check(request: Request) -> TokenOwner:
        owner = owner_of(request)
        if owner is None:
            raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        if owner.role not in roles:
            raise HTTPException(403, f"the {owner.role} role may not do this")
        return owner

    return check

