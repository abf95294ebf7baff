"""Server-rendered pages for auditors and the legal team (Jinja2 templates, no build step):
dashboard, recipients and one page per recipient, drift, data map, record of processing,
subject lookup, disclosures (form, history, transparency report), dead letters.

Every page but sign-in sits behind ``page_reader`` (a session of a reading role); form POSTs
carry the session's CSRF token (``form_user``)."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections import defaultdict
from datetime import date, datetime, timezone
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
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
from registry.ledger import chain as ledger
from registry.ledger import disclosures
from registry.model.declarations import current_manifest
from registry.model.subjects import subject_ref
from registry.model.taxonomy import Taxonomy
from registry.model.times import parse_bound, parse_time

from .auth import LEGAL, READ, form_user, is_https, page_user
from .clocks import clock_view, open_clocks
from .render import FIELD_LABELS, bar_chart, choice_label, choices, countries, render, sort_rows, taxonomy_of, when
from .sessions import LIFETIME, SESSION_COOKIE, PageSession, end_session, start_session
from .tokens import lookup_token

__all__ = ["router", "public", "render_error", "finding_anchor", "flow_anchor", "Reader"]

page_reader = page_user(READ)
Reader = Annotated[PageSession, Depends(page_reader)]
public = APIRouter(include_in_schema=False)  # sign-in and sign-out
router = APIRouter(include_in_schema=False, dependencies=[Depends(page_reader)])
LOGIN_COOKIE = "registry_login_csrf"  # the sign-in form's CSRF token, before there is a session


def render_error(request: Request, message: str, session: PageSession | None, status: int, title: str = "Not allowed",
                 back: str | None = None) -> HTMLResponse:
    return render(request, "error.html", session, status, title=title, message=message, back=back)


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


# --- dashboard, dead letters ---------------------------------------------------------------

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


@router.get("/dead-letters")
def dead_letters_page(request: Request, session: Reader, reason: str = "") -> Response:
    rows = deadletters.list_dead_letters(request.app.state.engine, reason or None)
    rows_sorted, sort, desc = sort_rows(request, [{**r.model_dump(), "origin": r.origin()} for r in rows], ("id", "reason", "received_at"), "id")
    every = deadletters.list_dead_letters(request.app.state.engine)
    return render(request, "dead_letters.html", session, title="Dead letters", active="/dead-letters", rows=rows_sorted,
                  sort=sort, desc=desc, reason=reason, reasons=sorted({r.reason for r in every} | ({reason} if reason else set())))


# --- recipients ----------------------------------------------------------------------------

@router.get("/recipients")
def recipients_page(request: Request, session: Reader, category: str = "user", since: str = "", until: str = "") -> Response:
    taxonomy = taxonomy_of(request)
    rows: list[dict[str, Any]] = []
    error = None
    try:
        found = questions.recipients_of(request.app.state.engine, category, parse_bound(since or None, "since"),
                                        parse_bound(until or None, "until"), include_subprocessors=True)
        rows = [r.model_dump() for r in found]
    except (ValueError, InputError) as exc:
        error = f"{getattr(exc, 'message', exc)}" if not isinstance(exc, InputError) or not exc.path else \
            f"{ {'since': 'From', 'until': 'Until', 'category': 'Kind of personal data'}.get(exc.path, exc.path)}: {exc.message}"
    columns = ("name", "via", "role", "country", "declared", "events", "first_seen", "last_seen")
    rows, sort, desc = sort_rows(request, rows, columns, "name")
    return render(request, "recipients.html", session, taxonomy=taxonomy, title="Recipients", active="/recipients", rows=rows,
                  sort=sort, desc=desc, category=category, since=since, until=until, error=error,
                  categories=_categories(taxonomy))


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
    return render(request, "recipient.html", session, title=detail.name, active="/recipients", d=detail, flows=flows,
                  sort=sort, desc=desc, mechanism=mechanism, contract=declared.contract if declared else None,
                  chain=manifest.processor_chain(key) if declared and manifest else [key],
                  subprocessors=sorted(r.key for r in manifest.recipients if r.processor_of == key) if manifest else [],
                  subjects=subjects_of(engine, key), total=sum(w.events for w in weeks),
                  chart=_week_chart(weeks, f"Events per week to {detail.name}"), guides=GUIDES,
                  findings=[{"kind": r.kind, "detail": r.detail, "anchor": finding_anchor(r)} for r in findings])


# --- drift ---------------------------------------------------------------------------------

@router.get("/drift")
def drift_page(request: Request, session: Reader) -> Response:
    engine = request.app.state.engine
    manifest = current_manifest(engine)
    names = {r.key: r.name for r in manifest.recipients} if manifest else {}
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in drift_mod.drift(engine):
        flow = f"/recipients/{row.recipient}#flow-{flow_anchor(row.source, row.category, row.purpose, row.legal_basis)}" if row.category else None
        groups.setdefault(row.kind, []).append({"row": row, "anchor": finding_anchor(row), "name": names.get(row.recipient, row.recipient),
                                                "flow_link": flow, "snippet": suggested_manifest(row)})
    return render(request, "drift.html", session, title="Drift", active="/drift", groups=list(groups.items()), guides=GUIDES)


# --- data map, record of processing, subject lookup ----------------------------------------

@router.get("/datamap")
def datamap_page(request: Request, session: Reader) -> Response:
    svg = reports.datamap_document(request.app.state.engine, "svg").decode()
    links = Markup('<a href="/api/diagram?format=svg">Download SVG</a> (API, bearer token)')
    return render(request, "embed.html", session, title="Data map", active="/datamap", links=links,
                  body=Markup(svg[svg.index("<svg"):]))


@router.get("/ropa")
def ropa_page(request: Request, session: Reader) -> Response:
    links = Markup("Download through the API (bearer token): ") + Markup(" · ").join(
        Markup('<a href="/api/ropa?format={}">{}</a>').format(f, f.upper()) for f in reports.FORMATS)
    html = reports.ropa_document(request.app.state.engine, "html").decode()
    body = html[html.index("</h1>") + 5:].replace("</html>", "")
    return render(request, "embed.html", session, title="Record of processing", active="/ropa", links=links, body=Markup(body))


@router.get("/subject")
def subject_form(request: Request, session: Reader) -> Response:
    return render(request, "subject.html", session, title="Subject lookup", active="/subject", answer=None)


@router.post("/subject")
def subject_lookup(request: Request, session: Annotated[PageSession, Depends(form_user(READ))],
                   subject_id: Annotated[str, Form()] = "") -> Response:
    answer = questions.subject(request.app.state.engine, subject_ref(subject_id))
    return render(request, "subject.html", session, title="Subject lookup", active="/subject", answer=answer)


# --- disclosures ---------------------------------------------------------------------------

_TIMES = ("received_at", "disclosed_at", "confirmed_at")
_LOCAL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$")


def _disclosure_page(request: Request, session: PageSession, values: dict[str, Any], message: str = "",
                     error: dict[str, str] | None = None, status: int = 200) -> Response:
    """Runs in a worker thread: the list and a full verify are database work."""
    engine = request.app.state.engine
    now = datetime.now(timezone.utc)
    today = now.date()
    rows, _ = disclosures.list_disclosures(engine, today=today, now=now)
    attention: list[dict[str, Any]] = []
    for r in rows:
        days = (date.fromisoformat(r.notice_due) - today).days if r.notice == "delayed" and r.notice_due else None
        if r.outcome == "pending" or days is not None:
            attention.append({"row": r, "days_left": days})
    attention.sort(key=lambda a: (a["days_left"] is None, a["days_left"] or 0, a["row"].received_at))
    dumped = [r.model_dump() for r in rows]
    dumped, sort, desc = sort_rows(request, dumped, ("request_id", "authority", "authority_country", "instrument", "received_at",
                                                     "due_at", "outcome", "notice", "versions"), "received_at", descending=True)
    taxonomy = taxonomy_of(request)
    shown = {k: (v[:16] if k in _TIMES and isinstance(v, str) else v) for k, v in values.items()}
    years = sorted({parse_time(r.received_at).year for r in rows})  # the report's periods are UTC
    return render(request, "disclosures.html", session, status, taxonomy=taxonomy, title="Disclosures to authorities",
                  active="/disclosures", check=ledger.verify(engine), attention=attention, rows=dumped, sort=sort, desc=desc,
                  can_log=session.role in LEGAL, values=shown, selected=set(values.get("data_categories") or []),
                  error=error, message=message, countries=countries(),
                  choices={f: choices(f) for f in ("instrument", "outcome", "notice")}, categories=_categories(taxonomy),
                  year=years[-1] if years else today.year, clocks=open_clocks(rows, now))


@router.get("/disclosures")
def disclosures_page(request: Request, session: Reader) -> Response:
    return _disclosure_page(request, session, {})


@router.post("/disclosures")
async def disclosures_submit(request: Request, session: Annotated[PageSession, Depends(form_user(LEGAL))]) -> Response:
    form = await request.form()
    values: dict[str, Any] = {k: str(v).strip() for k, v in form.items() if k not in ("csrf_token", "data_categories")}
    values["data_categories"] = [str(v).strip() for v in form.getlist("data_categories") if str(v).strip()]
    return await run_in_threadpool(_log_from_form, request, session, values)


def snapshot_from_form(values: dict[str, Any]) -> dict[str, Any]:
    """The disclosure snapshot a form submits: empty fields left out, a browser's date-time
    (``2026-04-02T10:00``, no zone) read as UTC, categories a list (a comma list is accepted)."""
    document: dict[str, Any] = {}
    for name in FIELD_LABELS:
        value = values.get(name)
        if value in (None, "", []):
            continue
        if name in _TIMES and isinstance(value, str) and _LOCAL.match(value):
            value = value + (":00Z" if len(value) == 16 else "Z")
        elif name == "emergency" and isinstance(value, str):
            value = value.lower() in ("on", "true", "yes", "1")  # a ticked checkbox sends "on"
        elif name == "subject_count" and isinstance(value, str) and value.isdigit():
            value = int(value)
        elif name == "data_categories" and isinstance(value, str):
            value = [c.strip() for c in value.split(",") if c.strip()]
        document[name] = value
    return document


def _log_from_form(request: Request, session: PageSession, values: dict[str, Any]) -> Response:
    try:
        result = disclosures.log_disclosure(request.app.state.engine, orjson.dumps(snapshot_from_form(values)).decode(),
                                            origin=f"web:{session.name}")
    except InputError as exc:
        problems = getattr(exc, "problems", None) or [(exc.path or "", exc.message)]
        fields = [re.split(r"[.\[]", path or "")[0] for path, _ in problems]
        label = FIELD_LABELS.get(fields[0], fields[0] or "The request")
        # every wrong field at once (issue 21): the first is the one the form points at
        message = "; ".join([problems[0][1]] + [f"{FIELD_LABELS.get(f, f)}: {m}" for f, (_, m) in zip(fields[1:], problems[1:])])
        return _disclosure_page(request, session, values, error={"field": fields[0], "label": label, "message": message}, status=422)
    return _disclosure_page(request, session, {}, f"Logged {result.request_id} version {result.version}.")


def _who(origin: str) -> str:
    kind, _, name = origin.partition(":")
    if kind == "web":
        return f"{name} (web form)"
    if kind == "file":
        return f"{name} (command line)"
    return f"{origin} (event stream)"


@router.get("/disclosures/requests/{request_id:path}")  # not /disclosures/ID: a request may be called "report"
def history_page(request: Request, session: Reader, request_id: str) -> Response:
    engine = request.app.state.engine
    versions = disclosures.request_history(engine, request_id)
    if not versions:
        return render_error(request, f"No request {request_id!r} has been logged.", session, 404, "Request not found",
                            back="/disclosures")
    now = datetime.now(timezone.utc)
    rows, _ = disclosures.list_disclosures(engine, now=now)
    current: disclosures.Disclosure | None = next((r for r in rows if r.request_id == request_id), None)
    request_clock = clock_view(current, now) if current is not None else None
    taxonomy = taxonomy_of(request)

    def show(field: str, value: Any) -> str:
        if value is None or value == []:
            return "—"
        if isinstance(value, bool):
            return "yes" if value else "no"
        if field == "data_categories":
            return ", ".join(taxonomy.name("data_categories", k) for k in value)
        if field in _TIMES or field == "notice_due":
            return when(value)
        if field in ("instrument", "outcome", "notice"):
            return choice_label(value, field)
        if field == "authority_country":
            from .render import country_name

            return country_name(value)
        if isinstance(value, list):
            return f"{len(value)} entries"
        return str(value)

    return render(request, "history.html", session, taxonomy=taxonomy, title=f"Request {request_id}", active="/disclosures",
                  versions=versions, current=current, who=_who, show=show, any_signed=any(v.signed for v in versions), request_clock=request_clock,
                  year=parse_time(current.received_at if current is not None else str(versions[-1].data["received_at"])).year)
