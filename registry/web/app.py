"""The FastAPI application: API router, pages, and the mapping of library errors to HTTP."""

from __future__ import annotations

import re
from urllib.parse import quote

from fastapi import FastAPI, Request
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
from .pages import public as public_pages
from .pages import render_error
from .pages import router as pages_router
from .transparency import router as transparency_router

__all__ = ["create_app"]

_PART = re.compile(r"[^.\[\]]+")


def create_app(db_url: str | None = None, public: bool = False) -> FastAPI:
    """``public``: also serve the published recipients list without a token (``serve --public``)."""
    app = FastAPI(title="dataflow-registry", version=__version__,
                  description="Who receives which personal data: questions, records of processing, disclosures.")
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
            loc = ["body", *(parts[1:] if parts[:1] == ["body"] else parts)]
            detail.append({"loc": loc, "msg": message, "type": "value_error"})
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(LoginRequired)
    async def sign_in(request: Request, _exc: LoginRequired) -> RedirectResponse:
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> HTMLResponse:
        return await run_in_threadpool(render_error, request, str(exc), exc.session, 403)

    @app.exception_handler(LedgerError)
    async def ledger_broken(_request: Request, exc: LedgerError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    @app.exception_handler(ConfigError)
    async def misconfigured(_request: Request, exc: ConfigError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.exception_handler(RegistryError)
    async def failed(_request: Request, exc: RegistryError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

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
