"""The transparency report on requests from authorities, per year or half-year, in the
dimensions large providers publish: legal process received and disclosed, outcome, requesting
country, subjects affected, notice, emergency requests, and the median days to disclose."""

from __future__ import annotations

import statistics
from collections import Counter
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

from registry.exceptions import InputError
from registry.ledger.deadlines import eu_authority_warning, late_disclosure_warning
from registry.ledger.disclosures import art48_warning, current_disclosures
from registry.model.times import parse_time

__all__ = ["TransparencyReport", "Period", "transparency_report", "report_rows", "to_markdown", "PRODUCED", "is_emergency",
           "subjects_of", "period_label"]

PRODUCED = ("produced", "partially_produced")


class TransparencyReport(BaseModel):
    year: int
    half: int | None = Field(None, description="1 (January–June) or 2 (July–December); null for the whole year")
    requests: int
    by_instrument: dict[str, int]
    by_outcome: dict[str, int]
    by_country: dict[str, int]
    subjects_affected: int
    notice: dict[str, int]
    emergency: int = Field(0, description="Requests flagged emergency, and emergency_request instruments")
    median_days_to_disclose: float | None = Field(None, description="Median of disclosed_at − received_at in days, 2 decimals, over the requests whose data was produced or partially produced")
    warnings: list[str] = Field(default_factory=list)


Period = tuple[datetime, datetime]


def period_of(year: int, half: int | None) -> Period:
    """[start, end) in UTC: the year, or its first or second half."""
    if not 1 <= year <= 9998:
        raise InputError("a year from 1 to 9998", "--year")
    if half not in (None, 1, 2):
        raise InputError("must be 1 or 2", "--half")
    start = datetime(year, 7 if half == 2 else 1, 1, tzinfo=timezone.utc)
    end = datetime(year, 7, 1, tzinfo=timezone.utc) if half == 1 else datetime(year + 1, 1, 1, tzinfo=timezone.utc)
    return start, end


def period_label(year: int, half: int | None) -> str:
    return f"{year:04d}" + (f"-H{half}" if half else "")


def is_emergency(data: dict[str, Any]) -> bool:
    return bool(data.get("emergency")) or data["instrument"] == "emergency_request"


def subjects_of(data: dict[str, Any]) -> int:
    """Subjects affected: subject_count (else the number of subject refs) where data was produced."""
    if data["outcome"] not in PRODUCED:
        return 0
    return int(data.get("subject_count", len(data.get("subject_refs", ()))))


def report_rows(engine: Engine, year: int, half: int | None = None) -> list[dict[str, Any]]:
    """The current snapshot of each request received in the period (by the UTC instant of
    ``received_at``: a request received 2026-07-01T01:00+02:00 belongs to the first half)."""
    start, end = period_of(year, half)
    with engine.connect() as conn:
        return [d for _, d in current_disclosures(conn) if start <= parse_time(d["received_at"]) < end]


def transparency_report(engine: Engine, year: int, half: int | None = None) -> tuple[TransparencyReport, list[str]]:
    """Requests received in the period, each counted once in its current state."""
    current = report_rows(engine, year, half)
    days = [(parse_time(d["disclosed_at"]) - parse_time(d["received_at"])).total_seconds() / 86400
            for d in current if d.get("disclosed_at") and d["outcome"] in PRODUCED]
    warnings = [w for d in current for w in (art48_warning(d), eu_authority_warning(d), late_disclosure_warning(d)) if w]
    report = TransparencyReport(
        year=year, half=half, requests=len(current),
        by_instrument=dict(sorted(Counter(d["instrument"] for d in current).items())),
        by_outcome=dict(sorted(Counter(d["outcome"] for d in current).items())),
        by_country=dict(sorted(Counter(d["authority_country"] for d in current).items())),
        subjects_affected=sum(subjects_of(d) for d in current),
        notice=dict(sorted(Counter(d["notice"] for d in current).items())),
        emergency=sum(is_emergency(d) for d in current),
        median_days_to_disclose=round(statistics.median(days), 2) if days else None,
        warnings=warnings,
    )
    return report, warnings


def to_markdown(report: TransparencyReport, warnings: list[str], controller: str | None = None) -> str:
    span = f"the {'first' if report.half == 1 else 'second'} half of {report.year}" if report.half else str(report.year)
    median = report.median_days_to_disclose
    lines = [f"# Transparency report {period_label(report.year, report.half)}" + (f": {controller}" if controller else ""), "",
             f"Requests for user data from government authorities received in {span}: **{report.requests}**.",
             f"Data subjects whose data was disclosed (fully or partly): **{report.subjects_affected}**.",
             f"Emergency requests: **{report.emergency}**.",
             f"Median days from receipt to disclosure: **{'—' if median is None else median}**.", ""]
    for title, counts in (("Legal process", report.by_instrument), ("Outcome", report.by_outcome),
                          ("Requesting country", report.by_country), ("User notice", report.notice)):
        lines += [f"## {title}", "", "| | requests |", "|---|---:|"]
        lines += [f"| {key.replace('_', ' ')} | {n} |" for key, n in counts.items()] or ["| none | 0 |"]
        lines.append("")
    if warnings:
        lines += ["## Requests to review", ""] + [f"- {w}" for w in warnings] + [""]
    return "\n".join(lines)
