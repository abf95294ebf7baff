"""Server-rendered pages for auditors and the legal team (Jinja2 templates, no build step):
dashboard, recipients and one page per recipient, drift, data map, record of processing,
dead letters, the status page and the page downloads (disclosures and the subject lookup are in
``disclosure_pages``).

Every page but sign-in sits behind ``page_reader`` (a session of a reading role); form POSTs
carry the session's CSRF token (``form_user``)."""

from __future__ import annotations

import hashlib
import secrets
from collections import defaultdict
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup

from registry import reports
from registry.answers import drift as drift_mod
from registry.answers import questions
from registry.answers.drift_guide import GUIDES, suggested_manifest
from registry.answers.overview import overview, subjects_of
from registry.answers.timeline import weekly_events
from registry.exceptions import InputError
from registry.intake import deadletters
from registry.ledger import disclosures
from registry.model.declarations import current_manifest
from registry.model.taxonomy import Taxonomy
from registry.model.times import parse_bound
from registry.reports.html import key_names, label_keys

from .auth import READ, form_user, is_https
from .clocks import open_clocks
from .guard import Reader, public, render_error, router
from .listing import listing
from .render import bar_chart, render, sort_rows, taxonomy_of
from .sessions import LIFETIME, SESSION_COOKIE, PageSession, end_session, start_session
from .tokens import lookup_token

__all__ = ["router", "public", "render_error", "finding_anchor", "flow_anchor"]

LOGIN_COOKIE = "registry_login_csrf"  # the sign-in form's CSRF token, before there is a session


def _cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", secure=is_https(request), path="/")


def _anchor(*parts: str | None) -> str:
    return hashlib.sha1("|".join(p or "" for p in parts).encode()).hexdigest()[:10]


def finding_anchor(row: drift_mod.DriftRow) -> str:
    """A stable id for one drift finding on the drift page."""
    return "f-" + _anchor(row.kind, row.recipient, row.source, row.category, row.purpose, row.activity)


def flow_anchor(source: str | None, category: str | None, purpose: str | None, legal_basis: str | None = None) -> str:
    """The id of a flow's row on its recipient page: its whole flow key (contract §5), so a
    consent flow and a contract flow of one category are two rows a finding can tell apart."""
    return _anchor(source, category, purpose, *([legal_basis] if legal_basis else []))


def _categories(taxonomy: Taxonomy) -> list[tuple[str, str, int]]:
    return [(k, taxonomy.name("data_categories", k), k.count(".")) for k in sorted(taxonomy.keys("data_categories"))]


# --- sign-in -------------------------------------------------------------------------------

@public.get("/login")
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = render(request, "login.html", None, title="Sign in", next=next, csrf_token=token, message=None)
    _cookie(request, response, LOGIN_COOKIE, token, 3600)
    return response


@public.post("/login")
def login(request: Request, token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/",
          csrf_token: Annotated[str, Form()] = "") -> Response:
    """Trade a token for a session: the cookie carries a random session id, never the token."""
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not secrets.compare_digest(csrf_token.encode(), expected.encode()):
        return render_error(request, "The sign-in form expired: sign in again.", None, 403, "Sign in", back="/login")
    owner = lookup_token(request.app.state.engine, token) if token else None
    if owner is None:
        return render_error(request, "Unknown token.", None, 401, "Sign in", back="/login")
    session_id, _ = start_session(request.app.state.engine, owner)
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    response = RedirectResponse(target, status_code=303)
    _cookie(request, response, SESSION_COOKIE, session_id, int(LIFETIME.total_seconds()))
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


@public.post("/logout")
def logout(request: Request, _: Annotated[PageSession, Depends(form_user(READ + ("service",)))]) -> Response:
    end_session(request.app.state.engine, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=is_https(request), httponly=True, samesite="strict")
    return response


# --- dashboard, status, dead letters ---------------------------------------------------------

def _week_chart(weeks: list[Any], title: str) -> Markup:
    return bar_chart([(w.week.strftime("%d %b %y"), w.events) for w in weeks], title)


@router.get("/")
def dashboard(request: Request, session: Reader) -> Response:
    engine = request.app.state.engine
    chart = _week_chart(weekly_events(engine), "Events per week, all recipients")
    now = datetime.now(timezone.utc)
    return render(request, "dashboard.html", session, title="Dashboard", active="/", o=overview(engine, now=now), chart=chart,
                  guides=GUIDES, stream=_stream_status(request),
                  clocks=open_clocks(disclosures.list_disclosures(engine, now=now)[0], now))


def _stream_status(request: Request) -> Any:
    """The default consumer group's position (``registry status``); end offsets and lag only
    when KAFKA_BOOTSTRAP_SERVERS names a broker, whose answer is reused for a few seconds."""
    import os

    from registry.stream.kafka import Topics
    from registry.stream.status import group_status

    topics = Topics()
    broker = None
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        broker = request.app.state.broker_offsets(None, [topics.transfers, topics.disclosures])
    return group_status(request.app.state.engine, topics=topics, broker=broker, ask_broker=False)


@router.get("/status")
def status_page(request: Request, session: Reader) -> Response:
    """What ``registry status`` says, for a person: the consumer group's partitions, the store,
    the ledger and the subject key."""
    import os

    from registry import __version__
    from registry.ledger import chain as ledger
    from registry.model.subjects import SUBJECT_KEY_ENV

    engine = request.app.state.engine
    return render(request, "status.html", session, title="Status", active="/status", stream=_stream_status(request),
                  check=ledger.verify(engine), o=overview(engine), version=__version__, database=engine.url.get_backend_name(),
                  subject_key=bool(os.environ.get(SUBJECT_KEY_ENV)), broker=os.environ.get("KAFKA_BOOTSTRAP_SERVERS"))


@router.get("/dead-letters")
def dead_letters_page(request: Request, session: Reader, reason: str = "") -> Response:
    every = deadletters.list_dead_letters(request.app.state.engine)
    rows = [{**r.model_dump(), "origin": r.origin()} for r in every if not reason or r.reason == reason]
    rows_sorted, sort, desc = sort_rows(request, rows, ("id", "reason", "received_at"), "id")
    found = listing(request, rows_sorted, ("reason", "detail", "origin"), ("id", "reason", "received_at", "detail", "origin"),
                    "dead-letters")
    if isinstance(found, Response):
        return found
    return render(request, "dead_letters.html", session, title="Dead letters", active="/dead-letters", rows=found.rows, listed=found,
                  sort=sort, desc=desc, reason=reason, reasons=sorted({r.reason for r in every} | ({reason} if reason else set())))


# --- recipients ----------------------------------------------------------------------------

_WORDS = {"since": "From", "until": "Until", "as_of": "As of", "category": "Kind of personal data", "recipient": "Recipient"}


def _problem(exc: Exception) -> str:
    """An input error in words: the field's label, then what is wrong."""
    if isinstance(exc, InputError) and exc.path:
        return f"{_WORDS.get(exc.path, exc.path)}: {exc.message}"
    return getattr(exc, "message", None) or str(exc)


def _window(since: str, until: str, as_of: str) -> tuple[datetime | None, datetime | None, datetime | None]:
    """The page's time selectors, read like the CLI's --since/--until/--as-of; InputError names
    the selector, and a window that ends before it starts is refused, as on the CLI."""
    start, end, at = parse_bound(since or None, "since"), parse_bound(until or None, "until"), parse_bound(as_of or None, "as_of")
    if start and end and start >= end:
        raise InputError("must be after From", "until")
    return start, end, at


@router.get("/recipients")
def recipients_page(request: Request, session: Reader, category: str = "user", since: str = "", until: str = "",
                    as_of: str = "", declared: str = "") -> Response:
    taxonomy = taxonomy_of(request)
    rows: list[dict[str, Any]] = []
    error = None
    try:
        start, end, at = _window(since, until, as_of)
        found_rows = questions.recipients_of(request.app.state.engine, category, start, end, include_subprocessors=True, as_of=at)
        rows = [r.model_dump() for r in found_rows]
    except (ValueError, InputError) as exc:
        error = _problem(exc)
    if declared in ("yes", "no"):
        rows = [r for r in rows if r["declared"] == (declared == "yes")]
    manifest = current_manifest(request.app.state.engine)
    names = {r.key: r.name for r in manifest.recipients} if manifest else {}
    for r in rows:
        r["via_name"] = names.get(r["via"], r["via"]) if r["via"] else None
    columns = ("name", "via", "role", "country", "declared", "events", "first_seen", "last_seen")
    rows, sort, desc = sort_rows(request, rows, columns, "name")
    found = listing(request, rows, ("recipient", "name", "via", "via_name", "service", "country", "role"),
                    ("recipient", "name", "service", "role", "country", "declared", "via", "categories", "first_seen", "last_seen",
                     "events"), "recipients")
    if isinstance(found, Response):
        return found
    return render(request, "recipients.html", session, 422 if error else 200, taxonomy=taxonomy, title="Recipients", active="/recipients",
                  rows=found.rows,
                  listed=found, sort=sort, desc=desc, category=category, since=since, until=until, as_of=as_of, declared=declared,
                  error=error, categories=_categories(taxonomy))


@router.get("/recipients/{key}")
def recipient_page(request: Request, session: Reader, key: str) -> Response:
    engine = request.app.state.engine
    try:
        detail = questions.recipient_detail(engine, key)
    except InputError as exc:
        return render_error(request, exc.message, session, 404, "Recipient not found", back="/recipients")
    manifest = current_manifest(engine)
    declared = manifest.recipient(key) if manifest else None
    findings = [r for r in drift_mod.drift(engine) if r.recipient == key]
    by_flow = drift_mod.flow_findings(findings)
    flows: list[dict[str, Any]] = []
    seen: defaultdict[str, int] = defaultdict(int)
    for f in detail.flows:
        base = flow_anchor(f.source, f.category, f.purpose, f.legal_basis)
        seen[base] += 1
        finding = by_flow.get((f.source, key, f.category, f.purpose, f.legal_basis))
        flows.append({**f.model_dump(), "anchor": base if seen[base] == 1 else f"{base}-{seen[base]}",
                      "finding": {"kind": finding.kind, "anchor": finding_anchor(finding)} if finding else None})
    flows, sort, desc = sort_rows(request, flows, ("category", "purpose", "legal_basis", "source", "events", "first_seen",
                                                   "last_seen"), "events", descending=True)
    weeks = weekly_events(engine, key)
    mechanism = "—"
    if declared is not None:
        mechanism = {"adequacy": "adequacy decision", "scc": "standard contractual clauses", "bcr": "binding corporate rules",
                     "derogation": "derogation (Art. 49)", "none": "none"}.get(declared.transfer_mechanism or "", "not needed or not declared")
    names = key_names(taxonomy_of(request), manifest)
    return render(request, "recipient.html", session, title=detail.name, active="/recipients", d=detail, flows=flows,
                  sort=sort, desc=desc, mechanism=mechanism, contract=declared.contract if declared else None,
                  chain=manifest.processor_chain(key) if declared and manifest else [key],
                  subprocessors=sorted(r.key for r in manifest.recipients if r.processor_of == key) if manifest else [],
                  subjects=subjects_of(engine, key), total=sum(w.events for w in weeks), names=names,
                  chart=_week_chart(weeks, f"Events per week to {detail.name}"), guides=GUIDES,
                  findings=[{"kind": r.kind, "detail": Markup(label_keys(r.detail, names)), "anchor": finding_anchor(r)} for r in findings])


# --- drift ---------------------------------------------------------------------------------

@router.get("/drift")
def drift_page(request: Request, session: Reader, since: str = "", until: str = "", as_of: str = "", kind: str = "",
               recipient: str = "") -> Response:
    engine = request.app.state.engine
    error, rows = None, []
    try:
        rows = drift_mod.drift(engine, *_window(since, until, as_of))
    except (ValueError, InputError) as exc:
        error = _problem(exc)
    manifest = current_manifest(engine)
    names = key_names(taxonomy_of(request), manifest)
    kinds = sorted({r.kind for r in rows})
    recipients = sorted({r.recipient for r in rows}, key=lambda k: str(names.get(k, k)).lower())
    chosen = [r for r in rows if (not kind or r.kind == kind) and (not recipient or r.recipient == recipient)]
    dumped = [{**r.model_dump(), "name": names.get(r.recipient, r.recipient), "row": r} for r in chosen]
    found = listing(request, dumped, ("kind", "recipient", "name", "source", "category", "purpose", "activity", "detail"),
                    ("kind", "source", "recipient", "category", "purpose", "activity", "detail", "first_seen", "last_seen", "events"),
                    "drift", words=names)
    if isinstance(found, Response):
        return found
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in found.rows:
        row = item["row"]
        flow = f"/recipients/{row.recipient}#flow-{flow_anchor(row.source, row.category, row.purpose, row.legal_basis)}" if row.category else None
        groups.setdefault(row.kind, []).append({"row": row, "anchor": finding_anchor(row), "name": item["name"],
                                                "flow_link": flow, "snippet": suggested_manifest(row),
                                                "detail": Markup(label_keys(row.detail, names))})
    return render(request, "drift.html", session, 422 if error else 200, title="Drift", active="/drift", groups=list(groups.items()),
                  guides=GUIDES, since=since, until=until, as_of=as_of, kind=kind, recipient=recipient, kinds=kinds,
                  recipients=recipients, names=names, error=error, total=found.matched, listed=found)


# --- data map, record of processing, downloads ----------------------------------------------

_MEDIA = {"md": "text/markdown; charset=utf-8", "csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8",
          "json": "application/json", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
          "svg": "image/svg+xml", "png": "image/png", "dot": "text/vnd.graphviz"}


def _query(**params: str) -> str:
    from urllib.parse import urlencode

    return urlencode({k: v for k, v in params.items() if v})


_MAPS: dict[tuple[Any, ...], bytes] = {}  # rendered maps by (store state, filters): `dot` takes 50-150 ms a drawing


def _datamap(engine: Any, fmt: str, category: str | None, recipient: str | None, at: datetime | None) -> bytes:
    """The data map, drawn again only when the store changed: the map is built from the manifest
    and the flow aggregates, so their event total and the manifest version say whether it did
    (every new transfer adds to the total; events have no serial id: their table is partitioned)."""
    with engine.connect() as conn:
        mark = conn.exec_driver_sql("SELECT (SELECT SUM(events) FROM flow_day), (SELECT MAX(version) FROM manifest_version)").one()
    key = (str(engine.url), tuple(mark), fmt, category, recipient, at)
    if key not in _MAPS:
        if len(_MAPS) > 64:
            _MAPS.clear()
        _MAPS[key] = reports.datamap_document(engine, fmt, category, recipient, at)  # type: ignore[arg-type]
    return _MAPS[key]


@router.get("/datamap")
def datamap_page(request: Request, session: Reader, as_of: str = "", category: str = "", recipient: str = "") -> Response:
    engine = request.app.state.engine
    taxonomy = taxonomy_of(request)
    manifest = current_manifest(engine)
    error, body = None, Markup("")
    try:
        at = parse_bound(as_of or None, "as_of")
        if category and category not in taxonomy.keys("data_categories"):
            raise InputError(f"unknown category {category!r}", "category")
        svg = _datamap(engine, "svg", category or None, recipient or None, at).decode()
        body = Markup(svg[svg.index("<svg"):])
    except (ValueError, InputError) as exc:
        error = _problem(exc)
    query = _query(as_of=as_of, category=category, recipient=recipient)
    return render(request, "datamap.html", session, 422 if error else 200, taxonomy=taxonomy, title="Data map", active="/datamap",
                  body=body, error=error, as_of=as_of, category=category, recipient=recipient, categories=_categories(taxonomy),
                  recipients=sorted(((r.key, r.name) for r in manifest.recipients), key=lambda kv: kv[1].lower()) if manifest else [],
                  download=f"/datamap/download?{query + '&' if query else ''}format=svg")


@router.get("/datamap/download")
def datamap_download(request: Request, session: Reader, format: str = "svg", as_of: str = "", category: str = "",
                     recipient: str = "") -> Response:
    """The data map as a file, authorised by the page session (the API stays bearer-only)."""
    if format not in ("svg", "png", "dot"):
        raise InputError("is one of svg, png, dot", "format")
    body = _datamap(request.app.state.engine, format, category or None, recipient or None, parse_bound(as_of or None, "as_of"))
    return Response(body, media_type=_MEDIA[format], headers={"Content-Disposition": f'attachment; filename="datamap.{format}"'})


@router.get("/ropa")
def ropa_page(request: Request, session: Reader, as_of: str = "", role: str = "controller") -> Response:
    error, body = None, Markup("")
    role = role if role in ("controller", "processor") else "controller"
    try:
        html = reports.ropa_document(request.app.state.engine, "html", role, parse_bound(as_of or None, "as_of")).decode()  # type: ignore[arg-type]
        body = Markup(html[html.index("</h1>") + 5:].replace("</html>", ""))
    except (ValueError, InputError) as exc:
        error = _problem(exc)
    query = _query(as_of=as_of, role=role if role != "controller" else "")
    links = [(f"/ropa/download?{query + '&' if query else ''}format={f}", f.upper()) for f in reports.FORMATS]
    return render(request, "ropa.html", session, 422 if error else 200, title="Record of processing", active="/ropa", body=body,
                  error=error, as_of=as_of, role=role, links=links)


@router.get("/ropa/download")
def ropa_download(request: Request, session: Reader, format: str = "xlsx", as_of: str = "", role: str = "controller") -> Response:
    """The record in any of its formats, authorised by the page session."""
    if format not in reports.FORMATS:
        raise InputError(f"is one of {', '.join(reports.FORMATS)}", "format")
    if role not in ("controller", "processor"):
        raise InputError("is controller or processor", "role")
    body = reports.ropa_document(request.app.state.engine, format, role, parse_bound(as_of or None, "as_of"))  # type: ignore[arg-type]
    return Response(body, media_type=_MEDIA[format], headers={"Content-Disposition": f'attachment; filename="ropa.{format}"'})

