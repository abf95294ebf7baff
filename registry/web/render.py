"""Rendering of the pages: one Jinja2 environment (autoescaped), the filters that turn stored
values into what a person reads (times, yes/no, taxonomy names with the key on hover, country
names, described choices), sortable tables, and the server-rendered SVG bar chart."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable, Sequence
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from registry.model.declarations import current_manifest
from registry.model.schemas import SCHEMA_DIR
from registry.model.taxonomy import Kind, Taxonomy, default_taxonomy

from .sessions import PageSession

__all__ = ["templates", "render", "when", "yesno", "country_name", "countries", "choices", "CHOICE_TEXT", "sort_rows",
           "bar_chart", "taxonomy_of", "countdown_badge", "choice_label", "FIELD_LABELS"]

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

# The words for each enum value of the disclosure schema (the values come from the schema).
CHOICE_TEXT: dict[str, dict[str, tuple[str, str]]] = {
    "instrument": {
        "subpoena": ("Subpoena", "An order to produce records, usually without a judge's review."),
        "court_order": ("Court order", "An order signed by a judge."),
        "search_warrant": ("Search warrant", "A warrant based on probable cause, signed by a judge."),
        "emergency_request": ("Emergency request", "A request citing danger of death or serious injury, without legal process."),
        "preservation_request": ("Preservation request", "A request to keep data until legal process follows; nothing is disclosed."),
        "other_legal_obligation": ("Other legal obligation", "Any other legal duty to disclose (e.g. a tax or regulator's request)."),
        "eu_production_order": ("EU production order", "A European Production Order (Regulation (EU) 2023/1543): data due in 10 days, "
                                                      "8 hours in an emergency."),
        "eu_preservation_order": ("EU preservation order", "A European Preservation Order: keep the data; lapses after 60 days "
                                                          "unless confirmed, then 30 days after the confirmation."),
    },
    "outcome": {
        "pending": ("Pending", "Still being reviewed; nothing decided yet."),
        "produced": ("Produced", "The data asked for was disclosed."),
        "partially_produced": ("Partly produced", "Some of the data asked for was disclosed."),
        "no_data": ("No data", "We hold no data matching the request."),
        "rejected": ("Rejected", "The request was refused (e.g. invalid or too broad)."),
        "challenged": ("Challenged", "The request is being contested before a court."),
    },
    "notice": {
        "pending": ("Not yet decided", "Whether the people concerned will be told is not decided."),
        "given": ("Given", "The people concerned were told."),
        "delayed": ("Delayed", "Telling them is postponed until a due date (set it below)."),
        "prohibited": ("Prohibited", "A court or law forbids telling them (e.g. a gag order)."),
        "not_given": ("Not given", "They were not told, for another reason."),
    },
}
FIELD_LABELS = {
    "request_id": "Request reference", "authority": "Requesting authority", "authority_country": "Authority's country",
    "instrument": "Legal process", "emergency": "Emergency", "confirmed_at": "Confirmed on", "received_at": "Received on", "disclosed_at": "Disclosed on", "outcome": "Outcome",
    "data_categories": "Data disclosed", "subject_refs": "Subjects (refs)", "subject_count": "Number of people concerned",
    "notice": "Notice to the people concerned", "notice_due": "Notice due by", "notice_reason": "Reason for delay or prohibition",
    "legal_reference": "Legal reference", "reviewed_by": "Reviewed by",
}


@lru_cache(maxsize=1)
def _countries() -> dict[str, str]:
    return json.loads((HERE / "countries.json").read_text(encoding="utf-8"))


def countries() -> list[tuple[str, str]]:
    """(code, name) sorted by name."""
    return list(_countries().items())


def country_name(code: str | None) -> str:
    if not code:
        return "—"
    return f"{_countries().get(code, code)} ({code})"


@lru_cache(maxsize=1)
def _schema_enums() -> dict[str, list[str]]:
    props = json.loads((SCHEMA_DIR / "disclosure.v1.schema.json").read_text())["properties"]
    return {name: props[name]["enum"] for name in CHOICE_TEXT}


def choices(field: str) -> list[tuple[str, str, str]]:
    """(value, label, help) in the schema's order."""
    text = CHOICE_TEXT[field]
    return [(v, *text.get(v, (v.replace("_", " ").capitalize(), ""))) for v in _schema_enums()[field]]


def choice_label(value: str | None, field: str) -> str:
    if value is None:
        return "—"
    return CHOICE_TEXT.get(field, {}).get(value, (value.replace("_", " "), ""))[0]


def when(value: Any, with_time: bool = True) -> str:
    """``2026-03-02 09:00 UTC`` from a datetime or RFC 3339 text; a date as ``2026-03-02``."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        text = value.strip()
        if len(text) == 10:
            return text
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        moment = moment.astimezone(timezone.utc)
        return moment.strftime("%Y-%m-%d %H:%M UTC") if with_time else moment.strftime("%Y-%m-%d")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def yesno(value: Any) -> str:
    return "yes" if value else "no"


def taxonomy_of(request: Request) -> Taxonomy:
    manifest = current_manifest(request.app.state.engine)
    return manifest.taxonomy_view() if manifest else default_taxonomy()


def _term(taxonomy: Taxonomy) -> Any:
    def term(key: str | None, kind: Kind = "data_categories") -> Markup:
        if not key:
            return Markup("—")
        return Markup('<abbr title="{}">{}</abbr>').format(key, taxonomy.name(kind, key))

    return term


def sort_rows(request: Request, rows: Sequence[Any], columns: Iterable[str], default: str,
              descending: bool = False) -> tuple[list[Any], str, bool]:
    """Rows sorted by the ``sort`` query parameter (one of ``columns``), ``dir`` asc|desc."""
    allowed = set(columns)
    key = request.query_params.get("sort", default)
    key = key if key in allowed else default
    desc = request.query_params.get("dir", "desc" if descending else "asc") == "desc"

    def value(row: Any) -> tuple[int, Any]:
        v = row.get(key) if isinstance(row, dict) else getattr(row, key, None)
        if v is None:
            return (1, "")
        return (0, v if isinstance(v, (int, float)) else str(v).lower())

    return sorted(rows, key=value, reverse=desc), key, desc


def _sort_link(request: Request) -> Any:
    def link(column: str, label: str, current: str, desc: bool, anchor: str = "") -> Markup:
        params = dict(request.query_params)
        new_desc = not desc if column == current else False
        params.update(sort=column, dir="desc" if new_desc else "asc")
        arrow = (" ▼" if desc else " ▲") if column == current else ""
        return Markup('<a href="?{}{}">{}{}</a>').format(urlencode(params), anchor, label, arrow)

    return link


def bar_chart(points: Sequence[tuple[str, int]], title: str, width: int = 720, height: int = 180,
              every: int | None = None) -> Markup:
    """A bar chart as inline SVG (no script): one bar per point, the label under every
    ``every``-th bar, the largest value on the axis; described for screen readers."""
    if not points:
        return Markup("<p>No events yet.</p>")
    top = max(v for _, v in points) or 1
    left, bottom, n = 48, 28, len(points)
    step = (width - left - 8) / n
    every = every or max(1, n // 6)
    parts = [f'<svg class=chart viewBox="0 0 {width} {height}" role=img aria-label="{escape(title)}" '
             f'preserveAspectRatio="xMinYMin meet"><title>{escape(title)}</title>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width}" y2="{height - bottom}" stroke="#57606a"/>',
             f'<text x="{left - 6}" y="14" text-anchor=end font-size=13 fill="#1b1f24">{top:,}</text>',
             f'<text x="{left - 6}" y="{height - bottom}" text-anchor=end font-size=13 fill="#1b1f24">0</text>']
    for i, (label, value) in enumerate(points):
        h = (height - bottom - 8) * value / top
        x = left + i * step
        parts.append(f'<rect x="{x + 1:.1f}" y="{height - bottom - h:.1f}" width="{max(step - 2, 1):.1f}" height="{h:.1f}" '
                     f'fill="#1f4e78"><title>{escape(label)}: {value:,}</title></rect>')
        if i % every == 0:
            parts.append(f'<text x="{x + 1:.1f}" y="{height - 10}" font-size=13 fill="#1b1f24">{escape(label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def countdown_badge(days: int | None) -> Markup:
    """Days left to a deadline as a badge: amber while due, red once overdue."""
    if days is None:
        return Markup("—")
    if days < 0:
        return Markup('<span class="badge warn">{} overdue</span>').format(_days(-days))
    if days == 0:
        return Markup('<span class="badge warn">due today</span>')
    return Markup('<span class="badge due">{} left</span>').format(_days(days))


def _days(n: int) -> str:
    return f"{n:,} day" if n == 1 else f"{n:,} days"


def render(request: Request, name: str, session: PageSession | None, status: int = 200, **context: Any) -> HTMLResponse:
    taxonomy = context.pop("taxonomy", None) or (taxonomy_of(request) if session else default_taxonomy())
    context.update(request=request, session=session, term=_term(taxonomy), when=when, yesno=yesno, country=country_name,
                   choice=choice_label, sort_link=_sort_link(request), field_label=FIELD_LABELS,
                   countdown_badge=countdown_badge)
    return templates.TemplateResponse(request, name, context, status_code=status)
