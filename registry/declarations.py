"""Storing manifest versions and reading the current one back."""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache

import orjson
import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Connection, Engine

from .manifest import Manifest
from .store import ActivityRow, ManifestVersion, RecipientRow, table

__all__ = ["DeclareResult", "declare", "current_manifest"]


class DeclareResult(BaseModel):
    controller: str
    recipients: int
    activities: int
    version: int


def declare(engine: Engine, manifest: Manifest) -> DeclareResult:
    """Store ``manifest`` as a new version (one transaction)."""
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        newest = conn.execute(sa.select(sa.func.max(table(ManifestVersion).c.version))).scalar()
        version = (newest or 0) + 1
        conn.execute(sa.insert(ManifestVersion), [{
            "version": version, "declared_at": now, "controller": manifest.controller.name,
            "body": manifest.model_dump_json(),
        }])
        if manifest.recipients:
            conn.execute(sa.insert(RecipientRow), [{"version": version, **r.model_dump()} for r in manifest.recipients])
        if manifest.activities:
            conn.execute(sa.insert(ActivityRow), [{"version": version, **a.model_dump()} for a in manifest.activities])
    return DeclareResult(controller=manifest.controller.name, recipients=len(manifest.recipients),
                         activities=len(manifest.activities), version=version)


def current_manifest(bind: Engine | Connection) -> Manifest | None:
    """The newest declared manifest, or None before the first ``declare``."""
    query = sa.select(table(ManifestVersion).c.body).order_by(table(ManifestVersion).c.version.desc()).limit(1)
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            body = conn.execute(query).scalar()
    else:
        body = bind.execute(query).scalar()
    return _parsed(body) if body else None


@lru_cache(maxsize=8)
def _parsed(body: str) -> Manifest:
    # every question reads the manifest; it is immutable (frozen models), so one parse per version
    return Manifest.model_validate(orjson.loads(body))
