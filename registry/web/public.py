"""The published recipients list for everyone, without a token (contract §8): a page a company
links from its privacy notice, the same list as JSON, and the change feed in Atom. Mounted only
by ``serve --public``; nothing else becomes public. Sync routes: FastAPI runs them off the event
loop, where the store is read."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from registry.answers.notices import published_list
from registry.reports.published import changes_document, list_document, public_rows

__all__ = ["router", "PATHS"]

router = APIRouter(include_in_schema=False)
PATHS = ("/public/recipients", "/public/recipients.json", "/public/recipients.atom")
# readers and feed readers poll: let a cache keep it for five minutes
_CACHE = {"Cache-Control": "public, max-age=300"}


def _urls(request: Request) -> tuple[str, str]:
    base = str(request.base_url).rstrip("/")
    return base + PATHS[2], base + PATHS[0]


@router.get(PATHS[0])
def recipients_page(request: Request) -> HTMLResponse:
    feed, _ = _urls(request)
    return HTMLResponse(list_document(request.app.state.engine, "html", public=True, feed_url=feed), headers=_CACHE)


@router.get(PATHS[1])
def recipients_json(request: Request) -> Response:
    rows = public_rows(published_list(request.app.state.engine))
    return Response(orjson.dumps(rows), media_type="application/json", headers=_CACHE)


@router.get(PATHS[2])
def recipients_atom(request: Request) -> Response:
    feed, page = _urls(request)
    return Response(changes_document(request.app.state.engine, "atom", self_url=feed, page_url=page),
                    media_type="application/atom+xml", headers=_CACHE)
