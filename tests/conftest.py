"""Shared fixtures: stores on SQLite and PostgreSQL (same assertions on both), the example
manifest, generated streams. The Kafka broker fixtures live in tests/kafka_broker.py."""

from __future__ import annotations

import os
import shutil
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


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The slow tests first (order otherwise kept). ``make test`` hands tests out one at a time
    (``--maxschedchunk 1``), so the minute-long broker tests start first, spread over the pytest
    workers, and the many short ones fill in around them. (xdist's default hands each worker a
    run of consecutive tests up front: with the slow tests first, one worker got all of them and
    ran them one after another, ~560 s, while the others had finished.)"""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    for container in _CONTAINERS:
        container.stop()  # type: ignore[attr-defined]


def _admin_url(url: str) -> str:
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def _empty_store_wanted(request: pytest.FixtureRequest) -> bool:
    return request.node.get_closest_marker("empty_store") is not None


@pytest.fixture(scope="session")
def _pg_template() -> Iterator[str | None]:
    """One PostgreSQL database migrated to head per session: every test's store is a copy
    (``CREATE DATABASE ... TEMPLATE``, ~0.3 s) instead of a fresh migration (~2 s)."""
    server = _server_url()
    if server is None:
        yield None
        return
    from registry.model.store import open_store

    admin = sa.create_engine(_admin_url(server), isolation_level="AUTOCOMMIT")
    name = f"registry_template_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = open_store(_admin_url(server).rsplit("/", 1)[0] + f"/{name}")
    open_store.cache_clear()
    engine.dispose()  # a template must have no connections when it is copied
    yield name
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite store migrated to head per session, copied into each test's folder."""
    from registry.model.store import open_store

    path = tmp_path_factory.mktemp("template") / "registry.db"
    engine = open_store(f"sqlite:///{path}")
    open_store.cache_clear()
    engine.dispose()
    return path


@pytest.fixture
def pg_databases(_pg_template: str | None) -> Iterator[Callable[..., str]]:
    """A factory of fresh PostgreSQL databases, dropped after the test: empty (no schema yet) by
    default, or ``make(migrated=True)``: a copy of the session's migrated template."""
    server = _server_url()
    if server is None:
        pytest.skip("no PostgreSQL: set TEST_DATABASE_URL or run a Docker engine for testcontainers")
    admin = sa.create_engine(_admin_url(server), isolation_level="AUTOCOMMIT")
    names: list[str] = []

    def make(migrated: bool = False) -> str:
        name = f"registry_test_{uuid.uuid4().hex[:12]}"
        template = f' TEMPLATE "{_pg_template}"' if migrated and _pg_template else ""
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"{template}')
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
def postgres_url(pg_databases: Callable[..., str], request: pytest.FixtureRequest) -> str:
    """A fresh PostgreSQL database, dropped after the test: migrated to head (a copy of the
    session's template) unless the test is marked ``empty_store``."""
    return pg_databases(migrated=not _empty_store_wanted(request))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every store test runs against both backends, on a store migrated to head (a copy of the
    session's template) or, marked ``empty_store``, on none yet."""
    if request.param == "sqlite":
        path = tmp_path / "registry.db"
        if not _empty_store_wanted(request):
            shutil.copyfile(request.getfixturevalue("_sqlite_template"), path)
        return f"sqlite:///{path}"
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
