"""Storing manifest versions and picking the one in force at a time.

Each version has ``declared_at`` (when ``declare`` stored it) and ``effective_from`` (when it
takes effect; earlier for a change made on paper before it was declared). The version in force
at T is the one with the latest ``effective_from`` ≤ T, the newest declaration winning a tie
(contract §4). :func:`in_force` is the one place that picks it; everything else asks it."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache

import orjson
import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection, Engine

from registry.exceptions import InputError

from .manifest import Manifest
from .tables import ActivityRow, ManifestVersion, RecipientRow
from .times import format_time

__all__ = ["DeclareResult", "declare", "current_manifest", "in_force", "in_force_at", "no_manifest_message", "newest_declared", "VersionInfo", "versions",
           "manifest_version"]


class DeclareResult(BaseModel):
    controller: str
    recipients: int
    activities: int
    version: int


def declare(engine: Engine, manifest: Manifest, effective_from: datetime | None = None,
            declared_at: datetime | None = None) -> DeclareResult:
    """Store ``manifest`` as a new version (one transaction), in force from ``effective_from``
    (default: now). ``declared_at`` is the clock (default: now): tests and imports of an older
    paper trail set it, since a change notice is announced at it (contract §8)."""
    now = declared_at or datetime.now(timezone.utc)
    with engine.begin() as conn:
        newest = conn.execute(sa.select(sa.func.max(ManifestVersion.c.version))).scalar()
        version = (newest or 0) + 1
        conn.execute(sa.insert(ManifestVersion), [{
            "version": version, "declared_at": now, "effective_from": effective_from or now,
            "controller": manifest.controller.name, "body": manifest.model_dump_json(),
        }])
        if manifest.recipients:
            conn.execute(sa.insert(RecipientRow), [{"version": version, **r.model_dump()} for r in manifest.recipients])
        if manifest.activities:
            conn.execute(sa.insert(ActivityRow), [{"version": version, **a.model_dump()} for a in manifest.activities])
    return DeclareResult(controller=manifest.controller.name, recipients=len(manifest.recipients),
                         activities=len(manifest.activities), version=version)


def _scalar(bind: Engine | Connection, query: sa.Select) -> object:  # type: ignore[type-arg]
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return conn.execute(query).scalar()
    return bind.execute(query).scalar()


def in_force(bind: Engine | Connection, at: datetime | None = None) -> Manifest | None:
    """The manifest in force at ``at`` (default: now), or None when no version is in force then."""
    m = ManifestVersion
    moment = at or datetime.now(timezone.utc)
    body = _scalar(bind, sa.select(m.c.body).where(m.c.effective_from <= moment)
                   .order_by(m.c.effective_from.desc(), m.c.version.desc()).limit(1))
    return _parsed(str(body)) if body else None


def no_manifest_message(as_of: datetime | None) -> str:
    if as_of is None:
        return "no manifest declared yet: run `registry declare FILE` first"
    return f"no manifest version was in force at {format_time(as_of)} (see `registry manifests`)"


def in_force_at(bind: Engine | Connection, as_of: datetime | None) -> Manifest | None:
    """The manifest a question with ``--as-of`` answers against. Before the first version took
    effect there is none, and "nothing was declared then" is not the same answer as "nobody
    received anything": an InputError, as the RoPA gives. Without ``as_of``: ``in_force`` now."""
    manifest = in_force(bind, as_of)
    if manifest is None and as_of is not None:
        raise InputError(no_manifest_message(as_of))
    return manifest


def current_manifest(bind: Engine | Connection) -> Manifest | None:
    """The manifest in force now, or None before the first ``declare``."""
    return in_force(bind)


def newest_declared(bind: Engine | Connection) -> Manifest | None:
    """The most recently declared version, whatever its effective date: its taxonomy validates
    incoming events, so a back-dated or future-dated declaration adds its extensions at once."""
    m = ManifestVersion
    body = _scalar(bind, sa.select(m.c.body).order_by(m.c.version.desc()).limit(1))
    return _parsed(str(body)) if body else None


class VersionInfo(BaseModel):
    version: int
    declared_at: str
    effective_from: str
    controller: str
    recipients: int
    activities: int


def versions(bind: Engine | Connection) -> list[tuple[VersionInfo, Manifest]]:
    """Every version with its manifest, in declaration order."""
    from .times import format_time

    m = ManifestVersion
    query = sa.select(m.c.version, m.c.declared_at, m.c.effective_from, m.c.controller, m.c.body).order_by(m.c.version)
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            rows = conn.execute(query).all()
    else:
        rows = bind.execute(query).all()
    out = []
    for version, declared_at, effective_from, controller, body in rows:
        manifest = _parsed(body)
        out.append((VersionInfo(version=version, declared_at=format_time(declared_at), effective_from=format_time(effective_from),
                                controller=controller, recipients=len(manifest.recipients),
                                activities=len(manifest.activities)), manifest))
    return out


def manifest_version(bind: Engine | Connection, version: int) -> Manifest | None:
    m = ManifestVersion
    body = _scalar(bind, sa.select(m.c.body).where(m.c.version == version))
    return _parsed(str(body)) if body else None


@lru_cache(maxsize=8)
def _parsed(body: str) -> Manifest:
    # every question reads the manifest; it is immutable (frozen models), so one parse per version
    return Manifest.model_validate(orjson.loads(body))
