"""Issue 21 on the web service: findings marked on the flow they are about (the whole flow key,
legal basis included, contract §5), and every parameter bounded in the OpenAPI document and
checked: 422, never 500 (the fuzz test's findings kept as fixed cases)."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from registry.intake.ingest import Ingestor
from registry.web import create_app
from registry.web.tokens import create_token

from .helpers import record, transfer
from .test_web import sign_in


@pytest.fixture
def db_url(tmp_path) -> str:  # type: ignore[no-untyped-def]
    return f"sqlite:///{tmp_path / 'web.db'}"


def test_a_finding_marks_only_the_flow_with_its_legal_basis(declared: sa.Engine, db_url: str) -> None:
    # google-analytics is declared for analytics under consent: the consent flow is declared, the
    # contract flow of the same category and purpose is the legal-basis finding
    Ingestor(declared).ingest([record(transfer("a1")), record(transfer("a2", legal_basis="contract"))])
    client = TestClient(create_app(db_url))
    assert sign_in(client, create_token(declared, "auditor").token).status_code == 303
    page = client.get("/recipients/google-analytics").text
    rows = re.findall(r'<tr id="flow-([^"]+)">(.*?)</tr>', page, re.S)
    marks = {basis: ("Legal basis" in row, anchor) for anchor, row in rows
             for basis in re.findall(r"<td>(consent|contract)</td>", row)}
    assert marks["consent"][0] is False and marks["contract"][0] is True
    # the drift page links the finding to the contract row, not the consent one
    drift = client.get("/drift").text
    assert f'/recipients/google-analytics#flow-{marks["contract"][1]}' in drift
    assert f'/recipients/google-analytics#flow-{marks["consent"][1]}"' not in drift


# found by the random fuzz run (`make fuzz`) and in CI before the parameters were bounded
FUZZ_CASES = [
    "/api/manifests/diff?b=-554747477289201674747904&a=53793747337",
    "/api/manifests/diff?a=1&b=9223372036854775808",
    "/api/manifests/diff?a=0&b=1",
    "/api/recipients?category=" + "u" * 201,
    "/api/recipients?category=user&since=" + "2" * 41,
    "/api/recipients/" + "k" * 201,
    "/api/subjects/" + "a" * 65,
    "/api/disclosures/report?year=9999",
    "/api/dead-letters?reason=" + "r" * 65,
    "/api/diagram?recipient=" + "r" * 201,
]


@pytest.mark.parametrize("path", FUZZ_CASES)
def test_out_of_range_parameters_are_422_not_500(declared: sa.Engine, db_url: str, path: str) -> None:
    token = create_token(declared, "auditor").token
    answer = TestClient(create_app(db_url)).get(path, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 422, answer.text


def test_every_parameter_is_bounded_in_the_openapi_document(declared: sa.Engine, db_url: str) -> None:
    doc = TestClient(create_app(db_url)).get("/openapi.json").json()
    unbounded = []
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for p in operation.get("parameters", []):
                schema = p["schema"]
                options = schema.get("anyOf", [schema])
                for s in options:
                    if s.get("type") == "string" and "maxLength" not in s and "enum" not in s:
                        unbounded.append(f"{method} {path} {p['name']}")
                    if s.get("type") in ("integer", "number") and ("maximum" not in s or "minimum" not in s):
                        unbounded.append(f"{method} {path} {p['name']}")
    assert unbounded == []


def test_a_manifest_with_control_characters_still_makes_a_workbook(engine: sa.Engine, db_url: str) -> None:
    """Found by `make fuzz`: a name with a control character, declared through the API, made
    GET /api/ropa?format=xlsx a 500 (openpyxl refuses the character). Declaring one is refused
    now (422 naming the field); a store declared before that still makes its workbook."""
    import io

    import yaml
    from openpyxl import load_workbook

    from registry.model.declarations import declare
    from registry.model.manifest import Manifest, manifest_from_document

    from .conftest import EXAMPLE_MANIFEST

    document = yaml.safe_load(EXAMPLE_MANIFEST.read_text())
    token = create_token(engine, "admin").token
    client = TestClient(create_app(db_url))
    headers = {"Authorization": f"Bearer {token}"}
    bad = {**document, "controller": {**document["controller"], "name": "Blausen\x01 Medical"}}
    refused = client.post("/api/manifests", json=bad, headers=headers)
    assert refused.status_code == 422 and "controller" in refused.text
    manifest = manifest_from_document(document)
    # a store declared before declare refused them: bypass the validator
    stored = Manifest.model_validate(manifest.model_dump() | {"controller": {**manifest.controller.model_dump(), "name": "Blausen\x01 Medical"}})
    declare(engine, stored)
    answer = client.get("/api/ropa?format=xlsx", headers=headers)
    assert answer.status_code == 200
    book = load_workbook(io.BytesIO(answer.content))
    assert book["Controller"]["B1"].value == "Blausen\ufffd Medical"


def test_the_disclosure_form_names_every_wrong_field(declared: sa.Engine, db_url: str) -> None:
    from .test_pages import FORM
    from .test_web import csrf_of

    client = TestClient(create_app(db_url))
    assert sign_in(client, create_token(declared, "legal").token).status_code == 303
    answer = client.post("/disclosures", data={**FORM, "notice": "delayed", "outcome": "produced", "data_categories": [],
                                               "disclosed_at": "2026-04-01T10:00", "csrf_token": csrf_of(client, "/disclosures")})
    assert answer.status_code == 422
    error = re.search(r'id="form-error">(.*?)</div>', answer.text, re.S)
    words = re.sub(r"<[^>]+>", "", error.group(1)) if error else ""
    assert "is before the request was received" in words and "Notice due by" in words and "is required when the outcome is produced" in words
