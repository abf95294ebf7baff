"""The transparency report as open data: a Frictionless Data Package, one CSV per dimension and
a ``datapackage.json`` describing each with a table schema. Written with the standard library
(csv + json), so the registry needs no data-package library at run time; the tests validate
the result with ``frictionless``."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from registry.model.declarations import current_manifest
from registry.model.schemas import SCHEMA_DIR

from .transparency import PRODUCED, TransparencyReport, is_emergency, period_label, report_rows, subjects_of, transparency_report

__all__ = ["package_files", "package_for", "write_package", "package_zip"]

_INT = "integer"


def _enum(field: str) -> list[str]:
    schema = json.loads((SCHEMA_DIR / "disclosure.v1.schema.json").read_text(encoding="utf-8"))
    return list(schema["properties"][field]["enum"])


def _resources(report: TransparencyReport, rows: list[dict[str, Any]]) -> list[tuple[str, str, list[tuple[str, str, str]], list[list[Any]]]]:
    """(name, title, [(field, type, description)], rows) per dimension; every row leads with the period."""
    period = period_label(report.year, report.half)
    disclosed = [d for d in rows if d["outcome"] in PRODUCED]
    instruments = _enum("instrument")
    received, given = Counter(d["instrument"] for d in rows), Counter(d["instrument"] for d in disclosed)
    subjects, emergency = Counter[str](), Counter[str]()
    for d in rows:
        subjects[d["instrument"]] += subjects_of(d)
        emergency[d["instrument"]] += is_emergency(d)
    by_country, country_given = Counter(d["authority_country"] for d in rows), Counter(d["authority_country"] for d in disclosed)
    p = ("period", "string", "The reporting period: YYYY or YYYY-H1 / YYYY-H2 (by the UTC instant of received_at)")
    return [
        ("summary", "Totals for the period",
         [p, ("year", _INT, ""), ("half", _INT, "1, 2, or empty for the whole year"),
          ("requests", _INT, "Requests received"), ("disclosed", _INT, "Requests where some data was produced"),
          ("subjects_affected", _INT, "Data subjects whose data was produced"),
          ("emergency", _INT, "Emergency requests"), ("median_days_to_disclose", "number", "Median days from receipt to disclosure")],
         [[period, report.year, report.half, report.requests, len(disclosed), report.subjects_affected, report.emergency,
           report.median_days_to_disclose]]),
        ("requests-by-type", "Requests by legal process: received and disclosed",
         [p, ("instrument", "string", "Legal process"), ("received", _INT, "Requests received"),
          ("disclosed", _INT, "Requests where some data was produced")],
         [[period, i, received[i], given[i]] for i in instruments]),
        ("outcomes", "Requests by outcome", [p, ("outcome", "string", ""), ("requests", _INT, "")],
         [[period, o, Counter(d["outcome"] for d in rows)[o]] for o in _enum("outcome")]),
        ("countries", "Requests by country of the requesting authority",
         [p, ("country", "string", "ISO 3166-1 alpha-2"), ("requests", _INT, ""), ("disclosed", _INT, "")],
         [[period, c, n, country_given[c]] for c, n in sorted(by_country.items())]),
        ("notice", "Notice to the people concerned: given, delayed, prohibited...",
         [p, ("notice", "string", ""), ("requests", _INT, "")],
         [[period, n, Counter(d["notice"] for d in rows)[n]] for n in _enum("notice")]),
        ("subjects-affected", "Data subjects whose data was produced, by legal process",
         [p, ("instrument", "string", ""), ("subjects_affected", _INT, "")],
         [[period, i, subjects[i]] for i in instruments]),
        ("emergency", "Emergency requests by legal process",
         [p, ("instrument", "string", ""), ("emergency_requests", _INT, "")],
         [[period, i, emergency[i]] for i in instruments]),
    ]


def package_files(report: TransparencyReport, rows: list[dict[str, Any]], controller: str | None = None) -> dict[str, bytes]:
    """File name → bytes: the CSVs and ``datapackage.json``."""
    files: dict[str, bytes] = {}
    resources = []
    for name, title, fields, table in _resources(report, rows):
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow([f for f, _, _ in fields])
        writer.writerows([["" if v is None else v for v in row] for row in table])
        path = f"{name}.csv"
        files[path] = text.getvalue().encode("utf-8")
        resources.append({
            "name": name, "title": title, "path": path, "profile": "tabular-data-resource", "format": "csv",
            "mediatype": "text/csv", "encoding": "utf-8",
            "schema": {"fields": [{"name": f, "type": t, **({"description": d} if d else {})} for f, t, d in fields]},
        })
    label = period_label(report.year, report.half)
    descriptor = {
        "profile": "tabular-data-package", "name": f"transparency-report-{label.lower()}",
        "title": f"Transparency report {label}" + (f": {controller}" if controller else ""),
        "description": "Requests for user data from government authorities, each counted once in its current state "
                       "(dataflow-registry disclosure ledger).",
        "resources": resources,
    }
    files["datapackage.json"] = json.dumps(descriptor, indent=2, ensure_ascii=False).encode("utf-8") + b"\n"
    return files


def package_for(engine: Engine, year: int, half: int | None = None) -> tuple[TransparencyReport, dict[str, bytes]]:
    """The period's report and its package files, titled with the controller's name: what the
    CLI writes to a folder and the pages and the API serve as a zip."""
    report, _ = transparency_report(engine, year, half)
    manifest = current_manifest(engine)
    return report, package_files(report, report_rows(engine, year, half), manifest.controller.name if manifest else None)


def write_package(directory: Path, files: dict[str, bytes]) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, body in files.items():
        (directory / name).write_bytes(body)
        written.append(directory / name)
    return written


def package_zip(files: dict[str, bytes]) -> bytes:
    """The package as one download (a browser cannot save a folder)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, body in files.items():
            archive.writestr(name, body)
    return buffer.getvalue()
