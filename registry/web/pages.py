"""Server-rendered pages for auditors and the legal team (no build step, no scripts): dashboard,
recipients explorer, data map, record of processing, subject lookup, disclosures."""

from __future__ import annotations

import secrets
from collections import Counter
from html import escape
from typing import Annotated, Any, Iterable

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response

import orjson

from .. import disclosures, drift as drift_mod, ledger, questions, reports
from ..events import parse_bound
from ..exceptions import InputError
from ..subjects import subject_ref
from ..tokens import lookup_token
from .auth import LEGAL, READ, form_user, is_https, page_user
from .sessions import LIFETIME, SESSION_COOKIE, PageSession, end_session, start_session

__all__ = ["router", "page"]

router = APIRouter(include_in_schema=False)
Reader = Annotated[PageSession, Depends(page_user(READ))]
LOGIN_COOKIE = "registry_login_csrf"  # the sign-in form's CSRF token, before there is a session
_CSS = """body{font:14px/1.45 -apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#1b1f24}
nav{background:#1f4e78;padding:.6em 1.2em}nav a{color:#fff;margin-right:1.2em;text-decoration:none}
main{max-width:1150px;margin:1.2em auto;padding:0 1em}table{border-collapse:collapse;width:100%;margin:.5em 0 1.2em}
th,td{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f3f6f9}
.cards{display:flex;gap:1em;flex-wrap:wrap}.card{border:1px solid #d0d7de;border-radius:8px;padding:.8em 1.2em;min-width:150px}
.card b{display:block;font-size:1.8em}.error{color:#a40e26;background:#ffebe9;padding:.4em .8em;border-radius:6px}
.ok{color:#116329;background:#dafbe1;padding:.2em .6em;border-radius:6px}label{display:block;margin:.3em 0}
input,select{padding:3px 6px;font:inherit}form.grid{display:grid;grid-template-columns:repeat(3,1fr);gap:.4em 1em}"""
_NAV = [("/", "Dashboard"), ("/recipients", "Recipients"), ("/datamap", "Data map"), ("/ropa", "Record of processing"),
        ("/subject", "Subject lookup"), ("/disclosures", "Disclosures")]


def page(title: str, body: str, session: PageSession | None = None, status: int = 200) -> HTMLResponse:
    nav = "".join(f'<a href="{href}">{label}</a>' for href, label in _NAV)
    who = (f'<form method=post action="/logout" style="float:right;margin:0"><span style="color:#cfe3f5">'
           f'{escape(session.name)} ({session.role})</span> {_csrf(session)}<button id=logout>Sign out</button></form>'
           if session else "")
    return HTMLResponse(f"<!doctype html><html lang=en><meta charset=utf-8><title>{escape(title)} — dataflow-registry</title>"
                        f"<style>{_CSS}</style><nav>{who}{nav}</nav><main><h1>{escape(title)}</h1>{body}</main></html>",
                        status_code=status)


def _csrf(session: PageSession) -> str:
    return f'<input type=hidden name=csrf_token value="{escape(session.csrf_token)}">'


def _cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, httponly=True, samesite="strict", secure=is_https(request), path="/")


def _table(rows: Iterable[dict[str, Any]], columns: list[str]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    cells = "".join("<tr>" + "".join(f"<td>{escape(_text(r.get(c)))}</td>" for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{cells}</table>" if cells else "<p>Nothing to show.</p>"


def _text(value: Any) -> str:
    if value is None:
        return ""
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


@router.get("/login")
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = page("Sign in", f'<form method=post action="/login"><input type=hidden name=next value="{escape(next)}">'
                    f'<input type=hidden name=csrf_token value="{token}">'
                    '<label>Token <input name=token type=password size=60 autofocus></label><button>Sign in</button></form>')
    _cookie(request, response, LOGIN_COOKIE, token, 3600)
    return response


@router.post("/login")
def login(request: Request, token: Annotated[str, Form()] = "", next: Annotated[str, Form()] = "/",
          csrf_token: Annotated[str, Form()] = "") -> Response:
    """Trade a token for a session: the cookie carries a random session id, never the token."""
    expected = request.cookies.get(LOGIN_COOKIE, "")
    if not expected or not secrets.compare_digest(csrf_token.encode(), expected.encode()):
        return page("Sign in", '<p class=error>The sign-in form expired: <a href="/login">sign in again</a>.</p>', status=403)
    owner = lookup_token(request.app.state.engine, token) if token else None
    if owner is None:
        return page("Sign in", '<p class=error>Unknown token. <a href="/login">Try again</a>.</p>', status=401)
    session_id, _ = start_session(request.app.state.engine, owner)
    target = next if next.startswith("/") and not next.startswith("//") else "/"
    response = RedirectResponse(target, status_code=303)
    _cookie(request, response, SESSION_COOKIE, session_id, int(LIFETIME.total_seconds()))
    response.delete_cookie(LOGIN_COOKIE, path="/")
    return response


@router.post("/logout")
def logout(request: Request, _: Annotated[PageSession, Depends(form_user(READ + ("service",)))]) -> Response:
    end_session(request.app.state.engine, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=is_https(request), httponly=True, samesite="strict")
    return response


@router.get("/")
def dashboard(request: Request, session: Reader) -> Response:
    engine = request.app.state.engine
    with engine.connect() as conn:
        events = conn.execute(sa.text("SELECT COUNT(*) FROM event")).scalar_one()
        recipients = conn.execute(sa.text("SELECT COUNT(DISTINCT recipient) FROM flow_day")).scalar_one()
        dead = conn.execute(sa.text("SELECT COUNT(*) FROM dead_letter WHERE status = 'dead'")).scalar_one()
    kinds = Counter(r.kind for r in drift_mod.drift(engine))
    cards = "".join(f'<div class=card><b>{n:,}</b>{escape(label)}</div>' for label, n in
                    (("events recorded", events), ("recipients observed", recipients), ("dead letters", dead),
                     ("drift findings", sum(kinds.values()))))
    return page("Dashboard", f"<div class=cards>{cards}</div><h2>Drift by kind</h2>"
                + _table(({"kind": k, "findings": n} for k, n in sorted(kinds.items())), ["kind", "findings"])
                + _consumer_status(engine), session)


def _consumer_status(engine: Any) -> str:
    """The default consumer group's position (``registry status``); end offsets and lag only
    when KAFKA_BOOTSTRAP_SERVERS names a broker."""
    import os

    from ..status import group_status

    status = group_status(engine, ask_broker=bool(os.environ.get("KAFKA_BOOTSTRAP_SERVERS")))
    lag = "unknown" if status.lag is None else f"{status.lag:,}"
    return (f"<h2>Consumers: group {escape(status.group)}</h2><p>Lag {lag}; last event {escape(_text(status.last_event_time))}; "
            f"manifest version {escape(_text(status.manifest_version))}</p>"
            + _table((p.model_dump() for p in status.partitions), ["topic", "partition", "stored_offset", "end_offset", "lag"]))


@router.get("/recipients")
def recipients_page(request: Request, session: Reader, category: str = "user", since: str = "", until: str = "") -> Response:
    form = (f'<form class=grid><label>Category <input name=category value="{escape(category)}"></label>'
            f'<label>Since <input name=since value="{escape(since)}" placeholder="YYYY-MM-DD"></label>'
            f'<label>Until <input name=until value="{escape(until)}" placeholder="YYYY-MM-DD"></label><button>Show</button></form>')
    try:
        rows = questions.recipients_of(request.app.state.engine, category, parse_bound(since or None, "since"),
                                       parse_bound(until or None, "until"), include_subprocessors=True)
        result = _table((r.model_dump() for r in rows), ["recipient", "via", "name", "service", "country", "declared",
                                                          "categories", "events", "first_seen", "last_seen"])
    except (ValueError, InputError) as exc:
        result = f"<p class=error>{escape(str(exc))}</p>"
    return page("Recipients", form + result, session)


@router.get("/datamap")
def datamap_page(request: Request, session: Reader) -> Response:
    svg = reports.datamap_document(request.app.state.engine, "svg").decode()
    return page("Data map", '<p><a href="/api/diagram?format=svg">Download SVG</a></p>' + svg[svg.index("<svg"):], session)


@router.get("/ropa")
def ropa_page(request: Request, session: Reader) -> Response:
    links = " · ".join(f'<a href="/api/ropa?format={f}">{f.upper()}</a>' for f in reports.FORMATS)
    html = reports.ropa_document(request.app.state.engine, "html").decode()
    return page("Record of processing", f"<p>Download: {links}</p>" + html[html.index("</h1>") + 5:], session)


def _subject_form(session: PageSession) -> str:
    return ('<form method=post action="/subject"><label>Subject id (hashed here with the subject key; never stored or logged) '
            f'<input name=subject_id size=40></label>{_csrf(session)}<button>Look up</button></form>')


@router.get("/subject")
def subject_form(session: Reader) -> Response:
    return page("Subject lookup", _subject_form(session), session)


@router.post("/subject")
def subject_lookup(request: Request, session: Annotated[PageSession, Depends(form_user(READ))],
                   subject_id: Annotated[str, Form()] = "") -> Response:
    answer = questions.subject(request.app.state.engine, subject_ref(subject_id))
    body = (_subject_form(session) + f"<p>Subject ref <code>{answer.subject_ref}</code></p><h2>Recipients</h2>"
            + _table((t.model_dump() for t in answer.transfers), ["recipient", "source", "categories", "purposes", "events",
                                                                  "first_seen", "last_seen"])
            + "<h2>Disclosures to authorities</h2>"
            + _table((d.model_dump() for d in answer.disclosures), ["request_id", "authority", "instrument", "outcome", "notice"])
            + "<h2>Notify on erasure (Art. 19)</h2><p>" + escape(", ".join(answer.notify_on_erasure) or "nobody") + "</p>")
    return page("Subject lookup", body, session)


_FIELDS = [("request_id", "text"), ("authority", "text"), ("authority_country", "text"), ("instrument", "select"),
           ("received_at", "text"), ("outcome", "select"), ("notice", "select"), ("notice_due", "text"),
           ("legal_reference", "text"), ("data_categories", "text")]
_CHOICES = {"instrument": ["subpoena", "court_order", "search_warrant", "emergency_request", "preservation_request", "other_legal_obligation"],
            "outcome": ["pending", "produced", "partially_produced", "no_data", "rejected", "challenged"],
            "notice": ["pending", "given", "delayed", "prohibited", "not_given"]}


def _disclosure_page(request: Request, session: PageSession, values: dict[str, str], message: str = "", status: int = 200) -> Response:
    """Runs in a worker thread: the list and a full verify are database work."""
    engine = request.app.state.engine
    rows, warnings = disclosures.list_disclosures(engine)
    check = ledger.verify(engine)
    state = (f"<span class=ok id=verify>verify: ok ({check.entries} entries)</span>" if check.ok
             else f"<span class=error id=verify>verify: broken at {escape(check.first_bad or 'the tail')}</span>")
    state += f" <small id=verify-reason>{escape(check.reason or '')}</small>"
    fields = ""
    for name, kind in _FIELDS:
        if kind == "select":
            options = "".join(f"<option{' selected' if values.get(name) == o else ''}>{o}</option>" for o in _CHOICES[name])
            fields += f'<label>{name} <select name={name}>{options}</select></label>'
        else:
            fields += f'<label>{name} <input name={name} value="{escape(values.get(name, ""))}"></label>'
    form = (f'<h2>Log a request</h2>{message}<form class=grid method=post action="/disclosures">{fields}{_csrf(session)}'
            '<button>Log</button></form>' if session.role in LEGAL else "")
    notes = "".join(f"<p class=error>{escape(w)}</p>" for w in warnings)
    return page("Disclosures", f"<p>{state}</p>{form}<h2>Requests</h2>{notes}"
                + _table((r.model_dump() for r in rows), ["request_id", "authority", "authority_country", "instrument",
                                                          "received_at", "outcome", "notice", "notice_due", "versions"]), session, status)


@router.get("/disclosures")
def disclosures_page(request: Request, session: Reader) -> Response:
    return _disclosure_page(request, session, {})


@router.post("/disclosures")
async def disclosures_submit(request: Request, session: Annotated[PageSession, Depends(form_user(LEGAL))]) -> Response:
    form = {k: str(v).strip() for k, v in (await request.form()).items() if k != "csrf_token"}
    return await run_in_threadpool(_log_from_form, request, session, form)


def _log_from_form(request: Request, session: PageSession, form: dict[str, str]) -> Response:
    document: dict[str, Any] = {k: v for k, v in form.items() if v and k in dict(_FIELDS)}
    if "data_categories" in document:
        document["data_categories"] = [c.strip() for c in document["data_categories"].split(",") if c.strip()]
    try:
        result = disclosures.log_disclosure(request.app.state.engine, orjson.dumps(document).decode(), origin=f"web:{session.name}")
    except InputError as exc:
        return _disclosure_page(request, session, form, f"<p class=error id=form-error>{escape(str(exc))}</p>", 422)
    return _disclosure_page(request, session, {}, f"<p class=ok>Logged {escape(result.request_id)} version {result.version}.</p>")
