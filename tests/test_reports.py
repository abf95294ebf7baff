"""The record of processing, the notice and the data map, from one store."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa
from openpyxl import load_workbook

from examples.blausen.generate import generate
from registry.intake.ingest import Ingestor
from registry.model.declarations import declare
from registry.model.events import RawRecord
from registry.model.manifest import parse_manifest
from registry.reports import datamap_document, ropa_document, write_all
from registry.reports.notice import to_notice
from registry.reports.ropa import ICO_COLUMNS

from .helpers import record
from .test_questions import EVENTS, MANIFEST


@pytest.fixture
def scenario(engine: sa.Engine) -> sa.Engine:
    declare(engine, parse_manifest(MANIFEST))
    Ingestor(engine).ingest([record(e) for e in EVENTS])
    return engine


@pytest.fixture
def blausen(declared: sa.Engine) -> sa.Engine:
    Ingestor(declared).ingest(RawRecord(value=line) for line, _ in generate(3000, seed=21))
    return declared


def test_json_follows_the_contract(scenario: sa.Engine) -> None:
    doc = orjson.loads(ropa_document(scenario, "json"))
    assert set(doc) == {"controller", "generated_at", "activities", "undeclared"}
    web = doc["activities"][0]
    assert set(web) == {"key", "name", "purposes", "legal_basis", "data_subjects", "data_categories", "recipients", "transfers",
                        "retention", "security_measures", "evidence", "status"}
    assert set(web["evidence"]) == {"events", "first_seen", "last_seen", "recipients_observed"}
    assert set(web["recipients"][0]) == {"key", "name", "service", "role", "country"}
    by_key = {a["key"]: a for a in doc["activities"]}
    # hand count: web covers events 1, 2, 10 (analytics, user.device); 3 is from //app but still covered content-wise
    assert by_key["web"]["evidence"] == {"events": 4, "first_seen": "2026-03-01T10:00:00Z", "last_seen": "2026-03-04T10:00:00Z",
                                         "recipients_observed": ["cdn"]}
    assert by_key["web"]["transfers"] == [{"recipient": "cdn", "country": "CN", "mechanism": "adequacy"},
                                          {"recipient": "cdn", "country": "US", "mechanism": "adequacy"}]
    assert [r["key"] for r in by_key["newsletter"]["recipients"]] == ["mail", "relay", "relay-store"]
    assert (by_key["web"]["status"], by_key["crm-act"]["status"]) == ("confirmed", "declared_not_observed")
    kinds = {(r["kind"], r["recipient"]) for r in doc["undeclared"]}
    assert ("undeclared_recipient", "tracker") in kinds and ("undeclared_purpose", "cdn") in kinds
    assert not any(r["kind"] == "declared_not_observed" for r in doc["undeclared"])


def test_processor_role_keeps_processing_by_processors(scenario: sa.Engine) -> None:
    doc = orjson.loads(ropa_document(scenario, "json", "processor"))
    assert [a["key"] for a in doc["activities"]] == ["web", "newsletter", "crm-act"]  # ads is an independent controller
    assert all(r["role"] in ("processor", "sub_processor") for a in doc["activities"] for r in a["recipients"])


def test_xlsx_has_the_ico_header_and_a_row_per_activity(blausen: sa.Engine, manifest) -> None:  # type: ignore[no-untyped-def]
    wb = load_workbook(io.BytesIO(ropa_document(blausen, "xlsx")))
    assert wb.sheetnames == ["Controller", "Record of processing", "Recipients", "Transfers", "Undeclared flows", "History"]
    sheet = wb["Record of processing"]
    rows = list(sheet.iter_rows(values_only=True))
    assert list(rows[0]) == ICO_COLUMNS
    assert rows[0][:2] == ("Business function", "Purpose of processing")
    assert [r[0] for r in rows[1:]] == [a.name for a in manifest.activities]
    assert sheet.freeze_panes == "A2" and sheet.auto_filter.ref.startswith("A1:")
    undeclared = list(wb["Undeclared flows"].iter_rows(values_only=True))[1:]
    assert any(r[0] == "undeclared_recipient" and r[2] == "facebook-pixel" for r in undeclared)
    assert wb["Controller"]["B1"].value == "Blausen Medical Communications, Inc."


def test_csv_md_html_name_every_activity(blausen: sa.Engine, manifest) -> None:  # type: ignore[no-untyped-def]
    rows = list(csv.reader(io.StringIO(ropa_document(blausen, "csv").decode())))
    assert rows[0] == ICO_COLUMNS and len(rows) == 1 + len(manifest.activities)
    markdown = ropa_document(blausen, "md").decode()
    html = ropa_document(blausen, "html").decode()
    for a in manifest.activities:
        assert a.name in markdown and f"<code>{a.key}</code>" in html
    assert "Medical specialty" in markdown  # labels are human names, extensions included
    assert "facebook-pixel" in html and "<script" not in html and "http" not in html.split("<style>")[0]


def test_svg_parses_and_names_every_recipient(blausen: sa.Engine, manifest) -> None:  # type: ignore[no-untyped-def]
    svg = datamap_document(blausen, "svg")
    root = ET.fromstring(svg)
    text = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
    for r in manifest.recipients:
        assert r.key in text, r.key
    assert "facebook-pixel" in text and "no transfer safeguard" in text
    only = datamap_document(blausen, "dot", recipient="mailchimp").decode()
    assert "mandrill-gcp" in only and "Stripe" not in only  # labels name the keys; node ids are encoded


def test_notice_groups_by_kind_and_lists_transfers(manifest) -> None:  # type: ignore[no-untyped-def]
    text = to_notice(manifest)
    assert text.index("### Hosting and server co-location") < text.index("### Billing and payment processing")
    assert "**ShareThis (\"Share this\" social widget)** (US): **no safeguard is in place yet**." in text
    assert "**Hotjar (session recording)**" in text and "(MT)" not in text.split("## International transfers")[1]
    assert "standard contractual clauses" in text


def test_report_writes_the_folder(blausen: sa.Engine, tmp_path: Path) -> None:
    files = write_all(blausen, tmp_path / "audit")
    assert files == ["datamap.svg", "drift.json", "notice.md", "ropa.csv", "ropa.html", "ropa.json", "ropa.md", "ropa.xlsx"]
    assert all((tmp_path / "audit" / f).stat().st_size > 0 for f in files)


def test_data_map_escapes_labels_and_keeps_lookalike_keys_apart(declared: sa.Engine) -> None:
    """Sources and recipients are event strings: markup, quotes and backslashes must not break
    dot, and keys that differ only by punctuation are different nodes."""
    from .helpers import transfer

    odd = ["//svc/<<b>x</b>>", "//svc/a-b", "//svc/a.b", '//svc/q"uote\\', "//svc/{x}; y -> z"]
    events = [transfer(f"m{i}", source=s) for i, s in enumerate(odd)] + [transfer(f"r{r}", recipient=r) for r in ("x-y", "x.y")]
    assert Ingestor(declared).ingest([record(e) for e in events]).ingested == len(events)
    dot = datamap_document(declared, "dot").decode()
    svg = datamap_document(declared, "svg")  # would raise if dot refused the file
    texts = {"".join(t.itertext()) for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")}
    for source in odd:
        assert source.removeprefix("//services/") in texts, source
    assert dot.count("source_") >= len(odd)  # five source nodes, none merged
    assert any(t.startswith("x-y") for t in texts) and any(t.startswith("x.y") for t in texts)
    assert datamap_document(declared, "png").startswith(b"\x89PNG")


def test_the_ropa_csv_neutralises_formulas_in_declared_text(engine: sa.Engine, manifest: Any) -> None:
    # a manifest's names are other people's text: a spreadsheet must not run one as a formula
    from registry.model.declarations import declare
    from registry.model.manifest import Manifest
    from registry.reports import ropa_document

    activity = manifest.activities[0].model_copy(update={"name": "=HYPERLINK(\"http://evil.example\")"})
    declare(engine, Manifest.model_validate(manifest.model_dump() | {"activities": [activity.model_dump(), *[a.model_dump() for a in manifest.activities[1:]]]}))
    text = ropa_document(engine, "csv").decode()
    assert "'=HYPERLINK" in text and "\n=HYPERLINK" not in text and ",=HYPERLINK" not in text
