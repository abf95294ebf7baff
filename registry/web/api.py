"""The JSON API under /api/: the same shapes as the CLI's --json output (contract §6, §7)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from registry import reports
from registry.answers import drift as drift_mod
from registry.answers import notices
from registry.answers import questions
from registry.answers.strict import check_reason
from registry.exceptions import InputError
from registry.intake import deadletters
from registry.intake.ingest import Ingestor, IngestResult, few_collections
from registry.ledger import chain as ledger
from registry.ledger import disclosures
from registry.model import declarations, history
from registry.model.events import RawRecord
from registry.model.manifest import manifest_from_document
from registry.model.schemas import SCHEMA_DIR
from registry.model.times import parse_bound
from registry.reports.transparency import TransparencyReport, transparency_report
from registry.stream import metrics

from .auth import ADMIN, LEGAL, READ, SERVICE, allow
from .tokens import TokenOwner

__all__ = ["router"]

router = APIRouter(prefix="/api")
Reader = Annotated[TokenOwner, Depends(allow(*READ))]
# Every string and integer parameter is bounded here, in the OpenAPI document, and checked
# before any work: an out-of-range value is a 422, never a value only the database refuses (500).
_TIME_LEN = 40  # the longest RFC 3339 time: 2026-03-01T09:00:00.123456789+01:00 and some
_KEY_LEN = 200  # taxonomy and recipient keys
Since = Annotated[str | None, Query(description="Window start, inclusive (RFC 3339 or YYYY-MM-DD)", max_length=_TIME_LEN)]
Until = Annotated[str | None, Query(description="Window end, exclusive (RFC 3339 or YYYY-MM-DD)", max_length=_TIME_LEN)]
AsOf = Annotated[str | None, Query(description="Answer as it stood then: the manifest in force at T, events before T",
                                   max_length=_TIME_LEN)]
Key = Annotated[str, Path(min_length=1, max_length=_KEY_LEN)]
Category = Annotated[str, Query(description="Data category key; covers every key under it", min_length=1, max_length=_KEY_LEN)]
OptionalKey = Annotated[str | None, Query(min_length=1, max_length=_KEY_LEN)]
Version = Annotated[int, Query(ge=1, le=history.VERSION_MAX, description="A manifest version")]
_MEDIA = {"md": "text/markdown; charset=utf-8", "csv": "text/csv; charset=utf-8", "html": "text/html; charset=utf-8",
          "json": "application/json", "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
          "svg": "image/svg+xml", "png": "image/png", "dot": "text/vnd.graphviz"}


def _schema(name: str) -> dict[str, Any]:
    """A schema of ``schemas/`` for the OpenAPI document: its ``#/$defs/`` references would point
    into the OpenAPI document there, so they are inlined."""
    schema = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    defs = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(defs[ref.removeprefix("#/$defs/")])
            return {k: inline(v) for k, v in node.items() if k not in ("$schema", "$id")}
        return [inline(v) for v in node] if isinstance(node, list) else node

    return inline(schema)  # type: ignore[no-any-return]


async def _json_body(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise InputError(f"not JSON: {exc}", "body") from None


@router.get("/recipients", response_model=list[questions.RecipientRow])
def recipients(request: Request, _: Reader, category: Category, since: Since = None, until: Until = None,
               include_subprocessors: bool = False, as_of: AsOf = None) -> Any:
    return questions.recipients_of(request.app.state.engine, category, parse_bound(since, "since"), parse_bound(until, "until"),
                                   include_subprocessors, parse_bound(as_of, "as_of"))


@router.get("/recipients/{key}", response_model=questions.RecipientDetail)
def recipient(request: Request, _: Reader, key: Key, since: Since = None, until: Until = None, as_of: AsOf = None) -> Any:
    return questions.recipient_detail(request.app.state.engine, key, parse_bound(since, "since"), parse_bound(until, "until"),
                                      parse_bound(as_of, "as_of"))


@router.get("/subjects/{ref}", response_model=questions.SubjectAnswer)
def subject(request: Request, _: Reader, ref: Annotated[str, Path(min_length=1, max_length=64)], as_of: AsOf = None) -> Any:
    return questions.subject(request.app.state.engine, ref, parse_bound(as_of, "as_of"))


@router.get("/drift", response_model=list[drift_mod.DriftRow])
def drift(request: Request, _: Reader, since: Since = None, until: Until = None, as_of: AsOf = None) -> Any:
    return drift_mod.drift(request.app.state.engine, parse_bound(since, "since"), parse_bound(until, "until"), parse_bound(as_of, "as_of"))


@router.get("/subprocessors", response_model=list[questions.SubprocessorRow])
def subprocessors(request: Request, _: Reader, as_of: AsOf = None) -> Any:
    return questions.subprocessor_chains(request.app.state.engine, parse_bound(as_of, "as_of"))


@router.get("/subprocessors/list", response_model=list[notices.ListedRecipient])
def subprocessors_list(request: Request, _: Reader, as_of: AsOf = None) -> Any:
    """The published recipients list (contract §8), as published at ``as_of``."""
    return notices.published_list(request.app.state.engine, parse_bound(as_of, "as_of"))


@router.get("/subprocessors/changes", response_model=list[notices.ChangeNotice])
def subprocessors_changes(request: Request, _: Reader,
                          since: Annotated[str | None, Query(description="Announced at or after T", max_length=_TIME_LEN)] = None) -> Any:
    """Change notices with their objection deadlines (contract §8)."""
    return notices.changes(request.app.state.engine, parse_bound(since, "since"))


@router.get("/ropa", response_class=Response, responses={200: {"content": {m: {} for m in _MEDIA.values()}}})
def ropa(request: Request, _: Reader, format: Literal["md", "csv", "xlsx", "json", "html"] = "json",
         role: Literal["controller", "processor"] = "controller", as_of: AsOf = None) -> Response:
    body = reports.ropa_document(request.app.state.engine, format, role, parse_bound(as_of, "as_of"))
    headers = {} if format == "json" else {"Content-Disposition": f'attachment; filename="ropa.{format}"'}
    return Response(body, media_type=_MEDIA[format], headers=headers)


@router.get("/notice", response_class=Response, responses={200: {"content": {"text/markdown": {}}}})
def notice(request: Request, _: Reader, as_of: AsOf = None) -> Response:
    return Response(reports.notice_document(request.app.state.engine, parse_bound(as_of, "as_of")), media_type=_MEDIA["md"])


@router.get("/diagram", response_class=Response, responses={200: {"content": {"image/svg+xml": {}, "image/png": {}}}})
def diagram(request: Request, _: Reader, format: Literal["svg", "png", "dot"] = "svg", category: OptionalKey = None,
            recipient: OptionalKey = None, as_of: AsOf = None) -> Response:
    return Response(reports.datamap_document(request.app.state.engine, format, category, recipient, parse_bound(as_of, "as_of")),
                    media_type=_MEDIA[format])


@router.post("/disclosures", response_model=disclosures.LogResult,
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _schema("disclosure.v1")}}}})
async def log_disclosure(request: Request, owner: Annotated[TokenOwner, Depends(allow(*LEGAL))]) -> Any:
    document = await _json_body(request)
    if not isinstance(document, dict):
        raise InputError("a disclosure is a JSON object", "body")
    return await run_in_threadpool(disclosures.log_disclosure, request.app.state.engine, orjson.dumps(document).decode(),
                                   f"web:{owner.name}")


@router.get("/disclosures", response_model=list[disclosures.Disclosure])
def list_disclosures(request: Request, _: Reader, open: bool = False, overdue: bool = False,
                     due_within: Annotated[float | None, Query(ge=0, le=876600, description="Open requests due within H hours")] = None) -> Any:
    rows, _warnings = disclosures.list_disclosures(request.app.state.engine, open, overdue, due_within=due_within)
    return rows


@router.get("/disclosures/verify", response_model=ledger.VerifyResult)
def verify(request: Request, _: Reader) -> Any:
    """Chain, signatures (with the server's configured key) and the server's anchor file; a saved
    head is checked with the CLI (`disclosures verify --anchor`), where the auditor holds it."""
    return ledger.verify(request.app.state.engine)


@router.get("/disclosures/head", response_model=ledger.Head)
def head(request: Request, _: Reader) -> Any:
    return ledger.head(request.app.state.engine, start_anchor=False)


@router.get("/disclosures/report", response_model=TransparencyReport)
def report(request: Request, _: Reader, year: Annotated[int, Query(ge=1, le=9998)],
           half: Annotated[int | None, Query(ge=1, le=2, description="1: January–June, 2: July–December")] = None) -> Any:
    return transparency_report(request.app.state.engine, year, half)[0]


@router.get("/disclosures/report/package", response_class=Response, responses={200: {"content": {"application/zip": {}}}})
def report_package(request: Request, _: Reader, year: Annotated[int, Query(ge=1, le=9998)],
                   half: Annotated[int | None, Query(ge=1, le=2)] = None) -> Response:
    """The Frictionless data package of the period (CSV per dimension and datapackage.json), zipped."""
    from registry.reports import datapackage

    _report, files = datapackage.package_for(request.app.state.engine, year, half)
    return Response(datapackage.package_zip(files), media_type="application/zip")


@router.get("/dead-letters", response_model=list[deadletters.DeadLetterView])
def dead_letters(request: Request, _: Reader, reason: Annotated[str | None, Query(max_length=64)] = None) -> Any:
    check_reason(reason, "reason")
    return deadletters.list_dead_letters(request.app.state.engine, reason)


@router.post("/manifests", response_model=declarations.DeclareResult,
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": _schema("manifest")}}}})
async def declare(request: Request, _: Annotated[TokenOwner, Depends(allow(*ADMIN))],
                  effective_from: Annotated[str | None, Query(description="When it takes effect (default now)", max_length=_TIME_LEN)] = None) -> Any:
    document = await _json_body(request)
    start = parse_bound(effective_from, "effective_from")
    return await run_in_threadpool(lambda: declarations.declare(request.app.state.engine, manifest_from_document(document), start))


@router.get("/manifests", response_model=list[declarations.VersionInfo])
def manifests(request: Request, _: Reader) -> Any:
    return history.list_versions(request.app.state.engine)


@router.get("/manifests/diff", response_model=history.ManifestDiff)
def manifests_diff(request: Request, _: Reader, a: Version, b: Version) -> Any:
    return history.diff_versions(request.app.state.engine, a, b)


_EVENT_BODY = {"oneOf": [{"type": "object"}, {"type": "array", "items": {"type": "object"}}]}
_EVENT_MEDIA = ("application/json", "application/cloudevents+json", "application/cloudevents-batch+json")


@router.post("/events", response_model=IngestResult,
             openapi_extra={"requestBody": {"required": True, "content": {m: {"schema": _EVENT_BODY} for m in _EVENT_MEDIA}}})
async def post_events(request: Request, _: Annotated[TokenOwner, Depends(allow(*SERVICE))]) -> Any:
    """One structured CloudEvent or an array of them, through the same path as the consumer;
    invalid events are dead-lettered and counted, not refused."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in _EVENT_MEDIA:
        # a form or text/plain body is what a cross-site page can send without a preflight
        raise HTTPException(415, f"Content-Type must be one of {', '.join(sorted(_EVENT_MEDIA))}")
    raw = await request.body()
    # parsing, re-serialising and ingesting are synchronous CPU and database work: off the event loop
    return await run_in_threadpool(_ingest_body, request.app.state.engine, raw)


def _ingest_body(engine: Any, raw: bytes) -> IngestResult:
    with few_collections():  # a batch body is hundreds of thousands of small objects
        records = [RawRecord(value=item, topic=deadletters.HTTP_ORIGIN) for item in _event_bytes(raw)]
    return metrics.ingest_counted(Ingestor(engine), records)


def _event_bytes(raw: bytes) -> list[bytes]:
    """Each event's own bytes, as the consumer gets a record's: the ingest path checks them the
    same way, so a duplicate key inside one event dead-letters that event (contract §1), not
    the batch, and what is checked is what was sent (no parser picked one of two values)."""
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InputError(f"not JSON: {exc}", "body") from None
    items = body if isinstance(body, list) else [body]
    if not all(isinstance(item, dict) for item in items):
        raise InputError("events are JSON objects (structured CloudEvents)", "body")
    if not isinstance(body, list):
        return [raw]
    text = raw.decode()  # orjson read it: UTF-8
    decoder, at, spans = json.JSONDecoder(), text.index("[") + 1, []
    try:
        for _ in items:  # orjson accepted the array: each item is one JSON value, commas between
            while text[at] in " \t\r\n,":
                at += 1
            _, end = decoder.raw_decode(text, at)
            spans.append(text[at:end].encode())
            at = end
    except RecursionError:
        raise InputError("events nested too deeply", "body") from None
    return spans
