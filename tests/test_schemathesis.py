"""Property-based run of every API operation from the OpenAPI document (the schemathesis CLI
against the live service): no input, valid or not, gets a server error (5xx).

In CI (``make test``) the run is deterministic: a fixed seed, deterministic generation and no
example database, so a submission never fails on cases drawn by chance. ``make fuzz`` is the
opt-in longer random run (REGISTRY_FUZZ_SEED=random, more examples); whatever it finds becomes a
fixed regression case in tests/test_web.py."""

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
    seed = os.environ.get("REGISTRY_FUZZ_SEED", "21")
    examples = os.environ.get("REGISTRY_FUZZ_EXAMPLES", "25")
    chance = ["--generation-database", "none"] if seed == "random" else ["--seed", seed, "--generation-deterministic"]
    with live_server(db_url) as base:
        proc = subprocess.run([cli, "run", f"{base}/openapi.json", "--header", f"Authorization: Bearer {token}",
                               "--checks", "not_a_server_error", "--max-examples", examples, "--no-color", *chance],
                              cwd=tmp_path,  # schemathesis keeps a cache folder in its working directory
                              capture_output=True, text=True, timeout=600, env={**os.environ, "SCHEMATHESIS_HOOKS": ""})
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
