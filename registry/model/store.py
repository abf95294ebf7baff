"""The store: opened on SQLite (default) or PostgreSQL and migrated with Alembic (its tables:
``tables.py``)."""

from __future__ import annotations

import os
import re
import sqlite3
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no file lock, one migrating process at a time
    fcntl = None  # type: ignore[assignment]

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Engine

from registry.exceptions import InputError, StoreError

__all__ = ["DEFAULT_DATABASE_URL", "open_store", "open_store_readonly", "database_url"]

DEFAULT_DATABASE_URL = "sqlite:///registry.db"
_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def database_url(url: str | None = None) -> str:
    return url or os.environ.get("REGISTRY_DATABASE_URL") or DEFAULT_DATABASE_URL


def _normalise(url: str) -> str | sa.engine.URL:
    # Plain postgresql:// URLs should use psycopg 3, the driver this package installs.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if "://" not in url:
        # contract §6: `--db PATH` without a scheme is a SQLite file. Built, never parsed: in
        # "sqlite:///" + path a ? would start a query string and a %41 would be decoded.
        return sa.engine.URL.create("sqlite", database=url)
    return url


def _shown(url: str | sa.engine.URL) -> str:
    return url.render_as_string(hide_password=True) if isinstance(url, sa.engine.URL) else url


def _sqlite_file(url: str | sa.engine.URL) -> str | None:
    """The file of a SQLite URL (None for memory or another database)."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return parsed.database


@lru_cache(maxsize=8)
def open_store_readonly(url: str | None = None) -> Engine:
    """An engine for commands that only read: it never creates, migrates or locks a store. A
    SQLite file is opened read-only (``mode=ro``); a missing one, a store that was never
    migrated, or one at an older schema is an InputError that says what to run."""
    target = _normalise(database_url(url))
    try:
        path = _sqlite_file(target)
        if path is not None:
            if not Path(path).is_file():
                raise InputError(f"no store at {path}: run registry declare first")
            # a URI filename opened by sqlite3 itself (no URL parsing in between): SQLite decodes
            # %HH, so a path with ?, # or % in it stays one path
            uri = f"file:{quote(Path(path).resolve().as_posix(), safe='/')}?mode=ro"
            engine = sa.create_engine("sqlite://", future=True, poolclass=sa.pool.NullPool,
                                      creator=lambda: sqlite3.connect(uri, uri=True, check_same_thread=False))
            sa_event.listen(engine, "connect", _sqlite_readonly_pragmas)
        else:
            engine = sa.create_engine(target, future=True, pool_pre_ping=True)
        _check_schema(engine, path or engine.url.render_as_string(hide_password=True))
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"cannot open the store at {_shown(target)}: {exc.__class__.__name__}: {exc.args[0] if exc.args else ''}") from None
    return engine


def _check_schema(engine: Engine, where: str) -> None:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    heads = set(ScriptDirectory.from_config(config).get_heads())
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    if not current:
        raise InputError(f"no store at {where}: run registry declare first")
    if current != heads:
        raise InputError(f"the store at {where} has an older schema ({', '.join(sorted(current))}): "
                         "run a command that writes (registry declare) to migrate it")


def _sqlite_readonly_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


@lru_cache(maxsize=8)
def open_store(url: str | None = None) -> Engine:
    """An engine on a migrated store (cached per URL within a process)."""
    target = _normalise(database_url(url))
    try:
        engine = sa.create_engine(target, future=True, pool_pre_ping=True)
        if engine.dialect.name == "sqlite":
            sa_event.listen(engine, "connect", _sqlite_pragmas)
        migrate(engine)
    except sa.exc.SQLAlchemyError as exc:
        raise StoreError(f"cannot open the store at {_shown(target)}: {exc.__class__.__name__}: {exc.args[0] if exc.args else ''}") from None
    return engine


def open_existing_store(url: str | None = None) -> Engine:
    """An engine for a command that changes a store but has no business creating one (``tokens
    revoke``): a missing store is the same InputError a read gives, and nothing is created."""
    target = _normalise(database_url(url))
    path = _sqlite_file(target)
    if path is not None and not Path(path).is_file():
        raise InputError(f"no store at {path}: run registry declare first")
    if path is None:
        probe = sa.create_engine(target, poolclass=sa.pool.NullPool)
        try:
            with probe.connect() as conn:
                if not sa.inspect(conn).has_table("alembic_version"):
                    raise InputError(f"no store at {_shown(target)}: run registry declare first")
        except sa.exc.SQLAlchemyError as exc:
            raise StoreError(f"cannot open the store at {_shown(target)}: {exc.__class__.__name__}") from None
        finally:
            probe.dispose()
    return open_store(url)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA cache_size=-16384")  # 16 MiB of pages: the hot index pages, within the memory target
    cursor.close()


@lru_cache(maxsize=1)
def head_revision() -> str | None:
    """The newest migration's revision, read from the version files without loading Alembic
    (~0.1 s a process): the one revision no other names as its ``down_revision``."""
    revisions, parents = set(), set()
    for path in (_MIGRATIONS / "versions").glob("*.py"):
        text = path.read_text(encoding="utf-8")
        found = re.search(r'^revision\s*(?::[^=]*)?=\s*["\']([^"\']+)["\']', text, re.M)
        parent = re.search(r'^down_revision\s*(?::[^=]*)?=\s*["\']([^"\']+)["\']', text, re.M)
        if found:
            revisions.add(found.group(1))
        if parent:
            parents.add(parent.group(1))
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def _at_head(engine: Engine) -> bool:
    head = head_revision()
    if head is None:
        return False
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all() == [head]
    except sa.exc.DBAPIError:
        return False  # no alembic_version table yet: a fresh store


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (a store already there costs one query)."""
    if _at_head(engine):
        return
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    with _migration_lock(engine), engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Several workers started at once on a fresh database: one migrates, the others wait
            # here, then find the schema at head. Released when this transaction ends.
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


MIGRATION_LOCK_KEY = 0x5245_4749  # "REGI": the advisory lock key serialising migrations


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[None]:
    """SQLite: an exclusive lock on ``<database>.migrate.lock`` beside the file, held while
    migrating (SQLite's own locks do not cover Alembic's read-then-create)."""
    path = engine.url.database if engine.dialect.name == "sqlite" else None
    if not path or path == ":memory:" or fcntl is None:
        yield
        return
    with open(f"{path}.migrate.lock", "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
