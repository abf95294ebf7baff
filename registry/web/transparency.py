"""The transparency report pages: the report of a year or half-year, and its downloads (the
Frictionless data package, zipped; the report as the CLI writes it, Markdown or JSON),
authorised by the page session."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from registry.exceptions import InputError
from registry.ledger import disclosures
from registry.model.declarations import current_manifest
from registry.model.times import parse_time
from registry.reports.transparency import period_label, transparency_report

from .guard import Reader, page_reader, render_error
from .render import bar_chart, choice_label, render

__all__ = ["router"]

router = APIRouter(include_in_schema=False, dependencies=[Depends(page_reader)])


def _today_year() -> int:
    return datetime.now(timezone.utc).year


@router.get("/disclosures/report")
def report_page(request: Request, session: Reader, year: str = "", half: str = "") -> Response:
    """The report of ``?year=`` (default: the latest year with a request) or of its ``?half=``
    (1 or 2; empty, as the form's "Whole year" sends it, is the whole year). A year or half the
    downloads refuse is refused here too, with the error page, not swapped for another period."""
    picked, period = _number(year, 1970, 9998), _number(half, 1, 2)
    if (year and picked is None) or (half and period is None):
        problem = "Year: is a year from 1970 to 9998" if year and picked is None else "Period: is 1 (January–June) or 2 (July–December)"
        return render_error(request, f"{problem}.", session, 422, "Cannot do that", back="/disclosures/report")
    engine = request.app.state.engine
    rows, _ = disclosures.list_disclosures(engine)
    received = {parse_time(r.received_at).year for r in rows}
    years = sorted(received | {_today_year()})
    shown = picked if picked is not None else (max(received) if received else _today_year())
    if shown not in years:
        years = sorted(set(years) | {shown})
    report, warnings = transparency_report(engine, shown, period)
    label = period_label(shown, period)
    chart = bar_chart([(choice_label(k, "instrument"), n) for k, n in report.by_instrument.items()],
                      f"Requests by legal process, {label}", width=560, height=170, every=1)
    tables = [("Legal process", report.by_instrument, "instrument"), ("Outcome", report.by_outcome, "outcome"),
              ("Requesting country", report.by_country, "country"), ("Notice to the people concerned", report.notice, "notice")]
    query = f"year={shown}" + (f"&half={period}" if period else "")
    return render(request, "report.html", session, title=f"Transparency report {label}", active="/disclosures", report=report,
                  warnings=warnings, chart=chart, tables=tables, years=years, query=query)


def _number(text: str, low: int, high: int) -> int | None:
    """``text`` as a whole number from ``low`` to ``high``, or None (a long digit string is refused
    by its length, before int() would have to read it)."""
    text = text.strip()
    if not text.isascii() or not text.isdigit() or len(text) > len(str(high)):
        return None
    return int(text) if low <= int(text) <= high else None


@router.get("/disclosures/report/package.zip")
def report_package(request: Request, session: Reader, year: Annotated[int, Query(ge=1970, le=9998)],
                   half: Annotated[int | None, Query(ge=1, le=2)] = None) -> Response:
    """The period's Frictionless data package (CSV per dimension + datapackage.json), zipped."""
    from registry.reports import datapackage

    _report, files = datapackage.package_for(request.app.state.engine, year, half)
    name = f"transparency-report-{period_label(year, half).lower()}.zip"
    return Response(datapackage.package_zip(files), media_type="application/zip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/disclosures/report/download")
def report_download(request: Request, session: Reader, year: Annotated[int, Query(ge=1970, le=9998)],
                    half: Annotated[int | None, Query(ge=1, le=2)] = None, format: str = "md") -> Response:
    """The period's transparency report as the CLI writes it (Markdown or JSON), authorised by the session."""
    from registry.reports.transparency import to_markdown

    if format not in ("md", "json"):
        raise InputError("is md or json", "format")
    engine = request.app.state.engine
    report, warnings = transparency_report(engine, year, half)
    if format == "json":
        body, media = report.model_dump_json(indent=2).encode(), "application/json"
    else:
        manifest = current_manifest(engine)
        body, media = to_markdown(report, warnings, manifest.controller.name if manifest else None).encode(), "text/markdown; charset=utf-8"
    name = f"transparency-{period_label(year, half).lower()}.{format}"
    return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/disclosures/report.json")
def report_json(request: Request, session: Reader, year: Annotated[int, Query(ge=1970, le=9998)],
                half: Annotated[int | None, Query(ge=1, le=2)] = None) -> Response:
    report, _ = transparency_report(request.app.state.engine, year, half)
    return Response(report.model_dump_json(indent=2), media_type="application/json",
                    headers={"Content-Disposition": f'attachment; filename="transparency-report-{period_label(year, half).lower()}.json"'})
