"""Property-based run of every API operation from the OpenAPI document (the schemathesis CLI
against the live service): no input, valid or not, gets a server error (5xx)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from examples.blausen.generate import generate
from registry.intake.ingest import Ingestor
from registry.model.events import RawRecord
from registry.web.tokens import create_token

from .helpers import live_server


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'api.db'}"


@pytest.mark.slow
def test_no_server_error(declared: sa.Engine, db_url: str, tmp_path: Path) -> None:
    Ingestor(declared).ingest(RawRecord(value=line) for line, _ in generate(500, seed=3, poison_per_reason=1))
    token = create_token(declared, "admin", "fuzzer").token
    cli = shutil.which("schemathesis") or str(Path(sys.executable).with_name("schemathesis"))
    with live_server(db_url) as base:
        proc = subprocess.run([cli, "run", f"{base}/openapi.json", "--header", f"Authorization: Bearer {token}",
                               "--checks", "not_a_server_error", "--max-examples", "25", "--no-color"],
                              cwd=tmp_path,  # schemathesis keeps a cache folder in its working directory
                              capture_output=True, text=True, timeout=600, env={**os.environ, "SCHEMATHESIS_HOOKS": ""})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
