"""The FastAPI application: API router, pages, and the mapping of library errors to HTTP."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from registry import __version__
from registry.exceptions import ConfigError, InputError, LedgerError, RegistryError
from registry.model.events import EventValidator
from registry.model.store import open_store
from registry.stream import metrics
from registry.stream.status import RecentOffsets

from .api import router as api_router
from .auth import Forbidden, LoginRequired
from .sessions import SESSION_COOKIE, find_session
from . import disclosure_pages, pages  # noqa: F401  (each registers its routes on the guarded router)
from .guard import public as public_pages
from .guard import render_error
from .guard import router as pages_router
from .transparency import router as transparency_router

__all__ = ["create_app"]

_MACHINE = ("/api/", "/openapi.json", "/metrics", "/docs", "/redoc", "/public/recipients.")


def _machine(path: str) -> bool:
    """Paths a program calls: their errors stay JSON."""
    return path.startswith(_MACHINE) or path == "/api"


def _page(request: Request, message: str, status: int, title: str) -> Response:
    """An error page; signed in, it keeps the navigation (the session is looked up here, since a
    404 never reached a route's guard)."""
    session = getattr(request.state, "session", None) or find_session(request.app.state.engine, request.cookies.get(SESSION_COOKIE))
    return render_error(request, message, session, status, title, back="/" if session else "/login")


_PART = re.compile(r"[^.\[\]]+")


def create_app(db_url: str | None = None, public: bool = False, public_url: str | None = None) -> FastAPI:
    """``public``: also serve the published recipients list without a token (``serve --public``);
    the API's documentation pages are then off (they would answer strangers). ``public_url``: the
    address the public list is reached at (the feed's self link)."""
    app = FastAPI(title="dataflow-registry", version=__version__,
                  description="Who receives which personal data: questions, records of processing, disclosures.",
                  openapi_url=None if public else "/openapi.json", docs_url=None if public else "/docs",
                  redoc_url=None if public else "/redoc")
    app.state.public_url = public_url
    app.state.engine = open_store(db_url)
    app.state.broker_offsets = RecentOffsets()  # the dashboard's lag card
    EventValidator()  # compile the schemas now, not during the first request

    @app.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError) -> Response:
        if not request.url.path.startswith("/api/"):  # a browser never gets a JSON error
            # rendering reads the manifest (names for keys): database work, off the event loop
            return await run_in_threadpool(render_error, request, exc.message, getattr(request.state, "session", None), 422,
                                           "Cannot do that")
        detail = []
        for path, message in getattr(exc, "problems", None) or [(exc.path, exc.message)]:
            parts = [int(p) if p.isdigit() else p for p in _PART.findall(path or "")]
            # a query parameter's problem is located in the query, as FastAPI's own 422s are
            name = str(parts[0]).lower() if parts else ""
            if name and name in request.query_params:
                loc: list[Any] = ["query", name, *parts[1:]]
            else:
                loc = ["body", *(parts[1:] if parts[:1] == ["body"] else parts)]
            detail.append({"loc": loc, "msg": message, "type": "value_error"})
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(LoginRequired)
    async def sign_in(request: Request, _exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> HTMLResponse:
        return await run_in_threadpool(render_error, request, str(exc), exc.session, 403)

    async def answer(request: Request, status: int, detail: str, title: str,
                     headers: dict[str, str] | None = None) -> Response:
        """JSON for the API and the machine paths, a page with the navigation for a browser."""
        if _machine(request.url.path):
            return JSONResponse({"detail": detail}, status_code=status, headers=headers)
        return await run_in_threadpool(_page, request, detail, status, title)

    @app.exception_handler(RequestValidationError)
    async def bad_request(request: Request, exc: RequestValidationError) -> Response:
        if _machine(request.url.path):
            return await request_validation_exception_handler(request, exc)
        fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
        return await run_in_threadpool(_page, request, f"This address has a wrong value ({fields}).", 422, "Cannot do that")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        title = {404: "Page not found", 405: "Not allowed here", 401: "Sign in", 403: "Not allowed"}.get(exc.status_code, "Cannot do that")
        detail = "There is no page at this address." if exc.status_code == 404 and not _machine(request.url.path) else str(exc.detail)
        return await answer(request, exc.status_code, detail, title, getattr(exc, "headers", None))

    @app.exception_handler(LedgerError)
    async def ledger_broken(request: Request, exc: LedgerError) -> Response:
        return await answer(request, 409, str(exc), "The ledger does not verify")

    @app.exception_handler(ConfigError)
    async def misconfigured(request: Request, exc: ConfigError) -> Response:
        return await answer(request, 503, str(exc), "Not configured")

    @app.exception_handler(RegistryError)
    async def failed(request: Request, exc: RegistryError) -> Response:
        return await answer(request, 503, str(exc), "Something went wrong")

    @app.get("/metrics", include_in_schema=False)
    def prometheus_metrics() -> Response:
        """Prometheus text exposition (contract §3); no token. A sync route: the lag refresh
        asks the broker and the database off the event loop."""
        metrics.refresh_lag(app.state.engine)
        metrics.set_disclosures_due(app.state.engine)
        return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)

    app.include_router(api_router)
    if public:
        from .public import router as published_router

        app.include_router(published_router)
    app.include_router(public_pages)
    app.include_router(pages_router)
    app.include_router(transparency_router)
    return app
