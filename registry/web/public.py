"""The published recipients list for everyone, without a token (contract §8): a page a company
links from its privacy notice, the same list as JSON, and the change feed in Atom. Mounted only
by ``serve --public``; nothing else becomes public. Sync routes: FastAPI runs them off the event
loop, where the store is read.

What a public cache may keep must not depend on the request: the page links the JSON and the
feed relatively, and the feed names its own address only from the configured public URL
(``serve --public-url``, ``REGISTRY_PUBLIC_URL``), never from the Host header. Each answer
carries an ETag (a hash of its body) and a matching ``If-None-Match`` gets 304. Errors are bare:
no internal navigation, no CLI hints; before any manifest is declared every format answers 404."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from html import escape

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from registry.exceptions import InputError, RegistryError
from registry.reports.published import changes_document, list_document

__all__ = ["router", "PATHS"]

router = APIRouter(include_in_schema=False)
PATHS = ("/public/recipients", "/public/recipients.json", "/public/recipients.atom")
# readers and feed readers poll: let a cache keep it for five minutes
_CACHE = {"Cache-Control": "public, max-age=300"}
_NO_STORE = {"Cache-Control": "no-store"}
_METHODS = ["GET", "HEAD"]
_NOTHING = "Nothing is published here yet."
_FAILED = "The list is not available right now. Please try again later."


def _answer(request: Request, media_type: str, body: Callable[[], str | bytes], error: Callable[[int, str], Response]) -> Response:
    try:
        content = body()
    except InputError:  # no manifest declared yet: the same status for every format
        return error(404, _NOTHING)
    except RegistryError:
        return error(503, _FAILED)
    data = content.encode() if isinstance(content, str) else content
    tag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    headers = {**_CACHE, "ETag": tag}
    asked = {t.strip().removeprefix("W/") for t in request.headers.get("if-none-match", "").split(",") if t.strip()}
    if tag in asked or "*" in asked:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=media_type, headers=headers)


def _html_error(status: int, message: str) -> Response:
    page = (f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(message)}</title></head>'
            f"<body><main><h1>{escape(message)}</h1></main></body></html>\n")
    return Response(page, status_code=status, media_type="text/html", headers=_NO_STORE)


def _json_error(status: int, message: str) -> Response:
    return Response(orjson.dumps({"detail": message}), status_code=status, media_type="application/json", headers=_NO_STORE)


def _text_error(status: int, message: str) -> Response:
    # a feed reader shows the status; a text body is what it can log (an Atom document has no error form)
    return Response(message + "\n", status_code=status, media_type="text/plain", headers=_NO_STORE)


def _base(request: Request) -> str | None:
    url = getattr(request.app.state, "public_url", None)
    return url.rstrip("/") if url else None


@router.api_route(PATHS[0], methods=_METHODS)
def recipients_page(request: Request) -> Response:
    return _answer(request, "text/html; charset=utf-8",
                   lambda: list_document(request.app.state.engine, "html", public=True, feed_url="recipients.atom"), _html_error)


@router.api_route(PATHS[1], methods=_METHODS)
def recipients_json(request: Request) -> Response:
    return _answer(request, "application/json", lambda: list_document(request.app.state.engine, "json", public=True), _json_error)


@router.api_route(PATHS[2], methods=_METHODS)
def recipients_atom(request: Request) -> Response:
    base = _base(request)
    self_url, page_url = (base + PATHS[2], base + PATHS[0]) if base else (None, "recipients")
    return _answer(request, "application/atom+xml",
                   lambda: changes_document(request.app.state.engine, "atom", self_url=self_url, page_url=page_url), _text_error)


@router.api_route("/public", methods=_METHODS)
@router.api_route("/public/{rest:path}", methods=_METHODS)
def not_published(rest: str = "") -> Response:
    """Anything else under /public/: a bare 404 (the internal error page would show the app's
    navigation to strangers; ``/public`` itself too, not a redirect built from the Host header)."""
    return _text_error(404, "Not found.") if rest.endswith((".atom", ".xml")) else \
        _json_error(404, "Not found.") if rest.endswith(".json") else _html_error(404, "Not found.")
