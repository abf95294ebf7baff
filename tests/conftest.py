"""Shared fixtures: stores on SQLite and PostgreSQL (same assertions on both), the example
manifest, generated streams. The Kafka broker fixtures live in tests/kafka_broker.py."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable, Iterator

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_MANIFEST = ROOT / "examples" / "blausen" / "manifest.yaml"
SUBJECT_KEY = "test-subject-key"

pytest_plugins = ["tests.kafka_broker"]


@pytest.fixture(autouse=True)
def _subject_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGISTRY_SUBJECT_KEY", SUBJECT_KEY)


def _postgres_server() -> str | None:
    """TEST_DATABASE_URL if set (CI sets it), else a testcontainers PostgreSQL if Docker answers."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
    except Exception:
        return None
    from testcontainers.postgres import PostgresContainer  # type: ignore[import-untyped]

    container = PostgresContainer("postgres:16-alpine")
    container.start()
    _CONTAINERS.append(container)
    return container.get_connection_url()


_CONTAINERS: list[object] = []
_SERVER: dict[str, str | None] = {}


def _server_url() -> str | None:
    if "url" not in _SERVER:
        _SERVER["url"] = _postgres_server()
    return _SERVER["url"]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for container in _CONTAINERS:
        container.stop()  # type: ignore[attr-defined]


def _admin_url(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1]


@pytest.fixture
def pg_databases() -> Iterator[Callable[[], str]]:
    """A factory of fresh, empty PostgreSQL databases (no schema yet), dropped after the test."""
    server = _server_url()
    if server is None:
        pytest.skip("no PostgreSQL: set TEST_DATABASE_URL or run a Docker engine for testcontainers")
    admin = sa.create_engine(_admin_url(server), isolation_level="AUTOCOMMIT")
    names: list[str] = []

    def make() -> str:
        name = f"registry_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        names.append(name)
        return _admin_url(server).rsplit("/", 1)[0] + f"/{name}"

    yield make
    from registry.model.store import open_store

    open_store.cache_clear()  # release pooled connections before the drop
    with admin.connect() as conn:
        for name in names:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture
def postgres_url(pg_databases: Callable[[], str]) -> str:
    """A fresh, empty PostgreSQL database, dropped after the test."""
    return pg_databases()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store test runs against both backends."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'registry.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def engine(db_url: str) -> sa.Engine:
    from registry.model.store import open_store

    return open_store(db_url)


@pytest.fixture
def manifest():  # type: ignore[no-untyped-def]
    from registry.model.manifest import load_manifest

    return load_manifest(EXAMPLE_MANIFEST)


@pytest.fixture
def declared(engine: sa.Engine, manifest) -> sa.Engine:  # type: ignore[no-untyped-def]
    from registry.model.declarations import declare

    declare(engine, manifest)
    return engine


def table_counts(engine: sa.Engine) -> dict[str, int]:
    tables = ("event", "flow_day", "subject_flow", "dead_letter", "ledger_entry", "manifest_version")
    with engine.connect() as conn:
        return {t: conn.exec_driver_sql(f"SELECT COUNT(*) FROM {t}").scalar_one() for t in tables}


def all_text(engine: sa.Engine) -> str:
    """Every stored value of every table, as one string, to search for leaked identifiers."""
    chunks: list[str] = []
    with engine.connect() as conn:
        for table in sa.inspect(conn).get_table_names():
            for row in conn.exec_driver_sql(f'SELECT * FROM "{table}"'):
                chunks.append(" ".join(str(v) for v in row))
    return "\n".join(chunks)
