"""The legal team's pages: the requests (list, notice countdowns, e-Evidence clocks, CSV), the
form that logs a request or its next version (every error at once, subjects entered as ids and
turned into refs here), one page per request, and the subject lookup with its print-ready
Art. 15 answer (HTML and CSV). The transparency report is in ``transparency``."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, timezone
from typing import Annotated, Any
from urllib.parse import quote

import orjson
from fastapi import Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from registry.answers import questions
from registry.exceptions import ConfigError, InputError
from registry.ledger import chain as ledger
from registry.ledger import disclosures
from registry.model.declarations import current_manifest
from registry.model.subjects import identifier_in, is_subject_ref, mask_text, subject_ref
from registry.model.taxonomy import Taxonomy
from registry.model.times import format_time, parse_time
from registry.reports.csvcell import row

from .auth import LEGAL, READ, form_user, page_user
from .clocks import clock_view, open_clocks
from .disclosure_form import PRODUCED, TIMES, choice_words, form_errors, snapshot_from_form
from .guard import Reader, render_error, router
from .listing import listing
from .render import FIELD_LABELS, choice_label, choices, countries, country_name, render, sort_rows, taxonomy_of, when
from .sessions import PageSession

__all__ = ["countdown"]

_ROW_COLUMNS = ("request_id", "authority", "authority_country", "instrument", "emergency", "received_at", "due_at", "disclosed_at",
                "outcome", "notice", "notice_due", "versions", "warnings")


def _today() -> date:
    return datetime.now(timezone.utc).date()


def countdown(due: str | None, today: date) -> int | None:
    """Days from today to a due date (negative: overdue)."""
    if not due:
        return None
    try:
        return (date.fromisoformat(due[:10]) - today).days
    except ValueError:
        return None


def _categories(taxonomy: Taxonomy) -> list[tuple[str, str, int]]:
    return [(k, taxonomy.name("data_categories", k), k.count(".")) for k in sorted(taxonomy.keys("data_categories"))]


# --- the list -------------------------------------------------------------------------------

@router.get("/disclosures")
def disclosures_page(request: Request, session: Reader, outcome: str = "", notice: str = "", instrument: str = "") -> Response:
    engine = request.app.state.engine
    now = datetime.now(timezone.utc)
    today = now.date()
    rows, _ = disclosures.list_disclosures(engine, today=today, now=now)
    attention: list[dict[str, Any]] = []
    for r in rows:
        days = countdown(r.notice_due, today) if r.notice == "delayed" else None
        if r.outcome == "pending" or days is not None:
            attention.append({"row": r, "days_left": days})
    attention.sort(key=lambda a: (a["days_left"] is None, a["days_left"] or 0, a["row"].received_at))
    dumped = [r.model_dump() for r in rows if (not outcome or r.outcome == outcome) and (not notice or r.notice == notice)
              and (not instrument or r.instrument == instrument)]
    dumped, sort, desc = sort_rows(request, dumped, ("request_id", "authority", "authority_country", "instrument", "received_at",
                                                     "due_at", "outcome", "notice", "versions"), "received_at", descending=True)
    found = listing(request, dumped, ("request_id", "authority", "authority_country", "instrument", "outcome", "notice"),
                    _ROW_COLUMNS, "disclosures", words={v: t[0] for f in ("instrument", "outcome", "notice") for v, t in
                                                         choice_words(f).items()})
    if isinstance(found, Response):
        return found
    years = sorted({_year(r.received_at) for r in rows})
    return render(request, "disclosures.html", session, title="Disclosures to authorities", active="/disclosures",
                  check=ledger.verify(engine), attention=attention, rows=found.rows, listed=found, sort=sort, desc=desc,
                  can_log=session.role in LEGAL, filters={"outcome": outcome, "notice": notice, "instrument": instrument},
                  choices={f: choices(f) for f in ("instrument", "outcome", "notice")}, year=years[-1] if years else today.year,
                  message=None, clocks=open_clocks(rows, now))


# --- the form -------------------------------------------------------------------------------

def _form_values(data: dict[str, Any]) -> dict[str, Any]:
    """A stored snapshot as the form shows it: date-times in UTC (the form reads them as UTC), cut
    to what a browser's input takes."""
    values = {k: v for k, v in data.items() if k in FIELD_LABELS}
    for name in TIMES:
        if isinstance(values.get(name), str):
            try:
                values[name] = format_time(parse_time(values[name]))[:16]
            except (ValueError, OverflowError):
                values[name] = values[name][:16]
    return values


def _form_page(request: Request, session: PageSession, values: dict[str, Any], errors: dict[str, str] | None = None,
               status: int = 200, update_of: str | None = None) -> Response:
    taxonomy = taxonomy_of(request)
    kept = [r for r in values.get("subject_refs") or [] if is_subject_ref(r)]
    title = f"Update request {update_of}" if update_of else "Log a request"
    return render(request, "disclosure_form.html", session, status, taxonomy=taxonomy, title=title, active="/disclosures",
                  values=values, selected=set(values.get("data_categories") or []), errors=errors or {}, countries=countries(),
                  choices={f: choices(f) for f in ("instrument", "outcome", "notice")}, categories=_categories(taxonomy),
                  update_of=update_of, kept=kept, produced=PRODUCED)


@router.get("/disclosures/new")
def new_request(request: Request, session: Annotated[PageSession, Depends(page_user(LEGAL))], update: str = "") -> Response:
    """An empty form, or with ``?update=ID`` the form prefilled from that request's newest version."""
    if not update:
        return _form_page(request, session, {})
    newest = _newest(request, update)
    if newest is None:
        return render_error(request, f"No request {update!r} has been logged.", session, 404, "Request not found", back="/disclosures")
    return _form_page(request, session, _form_values(newest), update_of=update)


def _newest(request: Request, request_id: str) -> dict[str, Any] | None:
    """The newest version's snapshot of a logged request (None: never logged)."""
    with request.app.state.engine.connect() as conn:
        return next((data for row, data in disclosures.current_disclosures(conn) if row.request_id == request_id), None)


@router.post("/disclosures")
@router.post("/disclosures/new")
async def disclosures_submit(request: Request, session: Annotated[PageSession, Depends(form_user(LEGAL))]) -> Response:
    form = await request.form()
    lists = ("data_categories", "subject_refs")
    values: dict[str, Any] = {k: str(v).strip() for k, v in form.items() if k not in ("csrf_token", *lists)}
    for name in lists:
        values[name] = [str(v).strip() for v in form.getlist(name) if str(v).strip()]
    return await run_in_threadpool(_log_from_form, request, session, values)


def _log_from_form(request: Request, session: PageSession, values: dict[str, Any]) -> Response:
    update_of = values.pop("update_of", "") or None
    errors = form_errors(values)
    if update_of and values.get("request_id") and values["request_id"] != update_of:
        errors.setdefault("request_id", f"is not the request being updated ({update_of})")
    document: dict[str, Any] = {}
    if not errors:
        try:
            # the request's newest version, whichever form logs it (marks the form does not offer are kept)
            document = snapshot_from_form(values, _newest(request, values["request_id"]))
        except ConfigError as exc:  # no subject key on this server: ids cannot become refs
            errors["subject_ids"] = str(exc)
    if not errors:
        try:
            result = disclosures.log_disclosure(request.app.state.engine, orjson.dumps(document).decode(), origin=f"web:{session.name}")
        except InputError as exc:
            # every wrong field the library names, each beside its own field (issue 21)
            for path, message in getattr(exc, "problems", None) or [(exc.path or "", exc.message)]:
                errors.setdefault(re.split(r"[.\[]", path)[0] or "request_id", message)
        else:
            return RedirectResponse(f"/disclosures/requests/{quote(result.request_id, safe='')}?logged={result.version}",
                                    status_code=303)
    values.pop("subject_ids", None)  # never echoed: the person types them again
    # nor a raw identifier typed into another field (the ledger refused it), nor one quoted in a message
    for name, value in list(values.items()):
        items = value if isinstance(value, list) else [value]
        if any(isinstance(v, str) and identifier_in(v) for v in items):
            values[name] = [v for v in items if not identifier_in(v)] if isinstance(value, list) else ""
            errors[name] = "held a raw identifier (an e-mail address, phone number or IP address), which the ledger never stores"
    errors = {name: mask_text(message) for name, message in errors.items()}
    return _form_page(request, session, values, errors, 422, update_of)


# --- one request, the report ---------------------------------------------------------------

def _who(origin: str) -> str:
    kind, _, name = origin.partition(":")
    if kind == "web":
        return f"{name} (web form)"
    if kind == "file":
        return f"{name} (command line)"
    return f"{origin} (event stream)"


@router.get("/disclosures/requests/{request_id:path}")  # not /disclosures/ID: a request may be called "report"
def history_page(request: Request, session: Reader, request_id: str, logged: int | None = None) -> Response:
    engine = request.app.state.engine
    versions = disclosures.request_history(engine, request_id)
    if not versions:
        return render_error(request, f"No request {request_id!r} has been logged.", session, 404, "Request not found",
                            back="/disclosures")
    now = datetime.now(timezone.utc)
    rows, _ = disclosures.list_disclosures(engine, now=now)
    current: disclosures.Disclosure | None = next((r for r in rows if r.request_id == request_id), None)
    request_clock = clock_view(current, now) if current is not None else None
    with engine.connect() as conn:
        data = next((d for row, d in disclosures.current_disclosures(conn) if row.request_id == request_id), versions[-1].data)
    taxonomy = taxonomy_of(request)

    def show(field: str, value: Any) -> str:
        if value is None or value == []:
            return "—"
        if isinstance(value, bool):
            return "yes" if value else "no"
        if field == "data_categories":
            return ", ".join(taxonomy.name("data_categories", k) for k in value)
        if field in TIMES or field == "notice_due":
            return when(value)
        if field in ("instrument", "outcome", "notice"):
            return choice_label(value, field)
        if field == "authority_country":
            return country_name(value)
        if field == "subject_refs":
            return f"{len(value)} {'person' if len(value) == 1 else 'people'}"
        if isinstance(value, list):
            return f"{len(value)} entries"
        return str(value)

    days = countdown(data.get("notice_due"), _today()) if data.get("notice") == "delayed" else None
    return render(request, "history.html", session, taxonomy=taxonomy, title=f"Request {request_id}", active="/disclosures",
                  versions=versions, current=current, data=data, who=_who, show=show, any_signed=any(v.signed for v in versions),
                  days_left=days, can_log=session.role in LEGAL, request_id=request_id, request_clock=request_clock,
                  message=f"Logged {request_id} version {logged}." if logged else None, year=_year(data.get("received_at")))


def _year(received_at: Any) -> int:
    """The year of the report a request belongs to: its receipt's UTC instant (the report's periods are UTC)."""
    try:
        return parse_time(str(received_at)).year
    except (ValueError, OverflowError):
        return _today().year


# --- subject lookup and the Art. 15 answer ---------------------------------------------------

def _answer(request: Request, session: PageSession, ref: str, status: int = 200) -> Response:
    engine = request.app.state.engine
    manifest = current_manifest(engine)
    names = {r.key: r.name for r in manifest.recipients} if manifest else {}
    answer = questions.subject(engine, ref)
    return render(request, "subject.html", session, status, title="Subject lookup", active="/subject", answer=answer, names=names,
                  error=None)


@router.get("/subject")
def subject_form(request: Request, session: Reader, ref: str = "") -> Response:
    """The lookup form; ``?ref=`` (a subject ref, never an id: links from a request carry it)
    shows that subject's answer."""
    if ref:
        if not is_subject_ref(ref):
            return render(request, "subject.html", session, 422, title="Subject lookup", active="/subject", answer=None,
                          error="A subject ref is 64 hexadecimal characters.")
        return _answer(request, session, ref)
    return render(request, "subject.html", session, title="Subject lookup", active="/subject", answer=None, error=None)


@router.post("/subject")
def subject_lookup(request: Request, session: Annotated[PageSession, Depends(form_user(READ))],
                   subject_id: Annotated[str, Form()] = "") -> Response:
    if not subject_id.strip():
        return render(request, "subject.html", session, 422, title="Subject lookup", active="/subject", answer=None,
                      error="Subject id: is required.")
    try:
        ref = subject_ref(subject_id.strip())
    except ConfigError as exc:
        return render(request, "subject.html", session, 503, title="Subject lookup", active="/subject", answer=None,
                      error=f"This server cannot look subjects up: {exc}. Start it with the subject key, or look up a ref.")
    return _answer(request, session, ref)


@router.get("/subject/answer")
def art15_answer(request: Request, session: Reader, ref: str = "", format: str = "html") -> Response:
    """The Art. 15 answer for one subject ref, ready to print (HTML) or as a CSV."""
    if not is_subject_ref(ref):
        return render_error(request, "A subject ref is 64 hexadecimal characters.", session, 422, "Cannot do that", back="/subject")
    engine = request.app.state.engine
    answer = questions.subject(engine, ref)
    manifest = current_manifest(engine)
    taxonomy = taxonomy_of(request)
    names = {r.key: r.name for r in manifest.recipients} if manifest else {}
    withheld = _withheld(engine, answer)
    answer = answer.model_copy(update={"disclosures": [d for d in answer.disclosures if d.request_id not in withheld]})
    if format == "csv":
        buffer = io.StringIO()
        out = csv.writer(buffer, lineterminator="\n")
        out.writerow(["section", "recipient", "recipient_name", "source", "categories", "purposes", "first_seen", "last_seen",
                      "events", "request_id", "authority", "instrument", "outcome", "notice", "disclosed_at"])
        for t in answer.transfers:
            out.writerow(row(["recipient", t.recipient, names.get(t.recipient, t.recipient), t.source,
                              "; ".join(taxonomy.name("data_categories", c) for c in t.categories),
                              "; ".join(taxonomy.name("data_uses", p) for p in t.purposes), t.first_seen, t.last_seen, t.events,
                              "", "", "", "", "", ""]))
        for d in answer.disclosures:
            out.writerow(row(["disclosure", "", "", "", "", "", "", "", "", d.request_id, d.authority, d.instrument, d.outcome,
                              d.notice, d.disclosed_at or ""]))
        for key in answer.notify_on_erasure:
            out.writerow(row(["notify_on_erasure", key, names.get(key, key), *[""] * 12]))
        return Response(buffer.getvalue().encode(), media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="art15-{ref[:12]}.csv"'})
    controller = manifest.controller if manifest else None
    return render(request, "art15.html", session, taxonomy=taxonomy, title="Your personal data: recipients and disclosures",
                  answer=answer, names=names, controller=controller, today=_today().isoformat(), withheld=sorted(withheld))


def _withheld(engine: Any, answer: questions.SubjectAnswer) -> set[str]:
    """Disclosures the person may not be told of yet: notice prohibited, undecided, or delayed
    to a date still ahead. The lookup page shows them; the answer to send leaves them out."""
    due = {r.request_id: r.notice_due for r in disclosures.list_disclosures(engine)[0]}
    today = _today()
    return {d.request_id for d in answer.disclosures
            if d.notice in ("prohibited", "pending") or (d.notice == "delayed" and (countdown(due.get(d.request_id), today) or 0) > 0)}
