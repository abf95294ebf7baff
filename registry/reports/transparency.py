"""The yearly transparency report on requests from authorities, in the dimensions large
providers publish: instrument, outcome, requesting country, subjects affected, notice."""

from __future__ import annotations

from collections import Counter

from pydantic import BaseModel
from sqlalchemy.engine import Engine

from registry.ledger.disclosures import art48_warning, current_disclosures

__all__ = ["TransparencyReport", "transparency_report", "to_markdown"]

PRODUCED = ("produced", "partially_produced")


class TransparencyReport(BaseModel):
    year: int
    requests: int
    by_instrument: dict[str, int]
    by_outcome: dict[str, int]
    by_country: dict[str, int]
    subjects_affected: int
    notice: dict[str, int]


def transparency_report(engine: Engine, year: int) -> tuple[TransparencyReport, list[str]]:
    """Requests received in ``year`` (by ``received_at``), each counted once in its current state.
    Subjects affected: subject_count (else the number of subject refs) where data was produced."""
    with engine.connect() as conn:
        current = [(row, data) for row, data in current_disclosures(conn) if row.received_at.startswith(f"{year:04d}-")]
    subjects = sum(int(d.get("subject_count", len(d.get("subject_refs", ())))) for row, d in current if row.outcome in PRODUCED)
    report = TransparencyReport(
        year=year, requests=len(current),
        by_instrument=dict(sorted(Counter(r.instrument for r, _ in current).items())),
        by_outcome=dict(sorted(Counter(r.outcome for r, _ in current).items())),
        by_country=dict(sorted(Counter(r.authority_country for r, _ in current).items())),
        subjects_affected=subjects,
        notice=dict(sorted(Counter(r.notice for r, _ in current).items())),
    )
    warnings = [w for _, d in current if (w := art48_warning(d))]
    return report, warnings


def to_markdown(report: TransparencyReport, warnings: list[str], controller: str | None = None) -> str:
    lines = [f"# Transparency report {report.year}" + (f": {controller}" if controller else ""), "",
             f"Requests for user data from government authorities received in {report.year}: **{report.requests}**.",
             f"Data subjects whose data was disclosed (fully or partly): **{report.subjects_affected}**.", ""]
    for title, counts in (("Legal process", report.by_instrument), ("Outcome", report.by_outcome),
                          ("Requesting country", report.by_country), ("User notice", report.notice)):
        lines += [f"## {title}", "", "| | requests |", "|---|---:|"]
        lines += [f"| {key.replace('_', ' ')} | {n} |" for key, n in counts.items()] or ["| none | 0 |"]
        lines.append("")
    if warnings:
        lines += ["## Requests to review (GDPR Art. 48)", ""] + [f"- {w}" for w in warnings] + [""]
    return "\n".join(lines)
