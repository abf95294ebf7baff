"""The routers every page module registers on: ``router`` behind a reading session (one guard
for all pages), ``public`` for sign-in and sign-out; and the error page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from .auth import READ, page_user
from .render import render
from .sessions import PageSession

__all__ = ["router", "public", "Reader", "page_reader", "render_error"]

page_reader = page_user(READ)
Reader = Annotated[PageSession, Depends(page_reader)]
public = APIRouter(include_in_schema=False)
router = APIRouter(include_in_schema=False, dependencies=[Depends(page_reader)])


def render_error(request: Request, message: str, session: PageSession | None, status: int, title: str = "Not allowed",
                 back: str | None = None) -> HTMLResponse:
    return render(request, "error.html", session, status, title=title, message=message, back=back, code=status)
