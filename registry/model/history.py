"""Manifest history for auditors: the versions, what changed between two of them, and the
history of versions (each against the one in force before it) that closes the RoPA."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Engine

from registry.exceptions import InputError

from .declarations import VersionInfo, manifest_version, versions
from .manifest import Manifest
from .times import parse_time

__all__ = ["VERSION_MAX", "VersionInfo", "list_versions", "Changes", "KeyedChanges", "ManifestDiff", "diff_manifests", "diff_versions",
           "HistoryEntry", "history"]


VERSION_MAX = 2_147_483_647  # manifest versions are 32-bit integers on PostgreSQL


class Changed(BaseModel):
    key: str
    fields: dict[str, list[Any]] = Field(description="field: [old, new]")


class KeyedChanges(BaseModel):
    added: list[str]
    removed: list[str]
    changed: list[Changed]


Changes = KeyedChanges


class ManifestDiff(BaseModel):
    # ``from`` is a Python keyword: the field is ``from_``, always written as ``from``
    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    from_: int | None = Field(alias="from", description="null: the first version (everything added)")
    to: int
    controller: dict[str, list[Any]] = Field(description="field: [old, new]")
    recipients: KeyedChanges
    activities: KeyedChanges

    def empty(self) -> bool:
        return not (self.controller or any(getattr(self, k).added or getattr(self, k).removed or getattr(self, k).changed
                                           for k in ("recipients", "activities")))


def list_versions(engine: Engine) -> list[VersionInfo]:
    return [info for info, _ in versions(engine)]


def _fields(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[Any]]:
    return {k: [old.get(k), new.get(k)] for k in sorted(set(old) | set(new)) if k != "key" and old.get(k) != new.get(k)}


def _keyed(old: Iterable[BaseModel], new: Iterable[BaseModel]) -> KeyedChanges:
    before = {item.key: item.model_dump() for item in old}  # type: ignore[attr-defined]
    after = {item.key: item.model_dump() for item in new}  # type: ignore[attr-defined]
    changed = [Changed(key=k, fields=f) for k in sorted(set(before) & set(after)) if (f := _fields(before[k], after[k]))]
    return KeyedChanges(added=sorted(set(after) - set(before)), removed=sorted(set(before) - set(after)), changed=changed)


def diff_manifests(old: Manifest | None, new: Manifest, from_version: int | None, to_version: int) -> ManifestDiff:
    """What changed from ``old`` to ``new``: controller fields, and recipients and activities by
    key (a changed one lists each changed field as [old, new]). ``old`` None: everything added."""
    return ManifestDiff(**{"from": from_version}, to=to_version,
                        controller=_fields(old.controller.model_dump() if old else {}, new.controller.model_dump()) if old
                        else {k: [None, v] for k, v in new.controller.model_dump().items() if v is not None},
                        recipients=_keyed(old.recipients if old else [], new.recipients),
                        activities=_keyed(old.activities if old else [], new.activities))


def diff_versions(engine: Engine, a: int, b: int) -> ManifestDiff:
    # checked before the query: a number past 64 bits is an OverflowError in the driver, not an answer
    for number, name in ((a, "A"), (b, "B")):
        if not 1 <= number <= VERSION_MAX:
            raise InputError(f"no manifest version {number}: versions are whole numbers from 1 to {VERSION_MAX}", name)
    old, new = manifest_version(engine, a), manifest_version(engine, b)
    if old is None:
        raise InputError(f"no manifest version {a}", "A")
    if new is None:
        raise InputError(f"no manifest version {b}", "B")
    return diff_manifests(old, new, a, b)


class HistoryEntry(BaseModel):
    version: int
    declared_at: str
    effective_from: str
    changes: ManifestDiff = Field(description="against the version in force before this one took effect")


def history(engine: Engine, as_of: datetime | None = None) -> list[HistoryEntry]:
    """The versions in the order they took effect (ties: declaration order), each with what it
    changed against the one in force before it; with ``as_of`` only those in force by then."""
    ordered = sorted(versions(engine), key=lambda vm: (parse_time(vm[0].effective_from), vm[0].version))
    if as_of is not None:
        ordered = [vm for vm in ordered if parse_time(vm[0].effective_from) <= as_of]
    out: list[HistoryEntry] = []
    previous: tuple[VersionInfo, Manifest] | None = None
    for info, manifest in ordered:
        before = previous[1] if previous else None
        out.append(HistoryEntry(version=info.version, declared_at=info.declared_at, effective_from=info.effective_from,
                                changes=diff_manifests(before, manifest, previous[0].version if previous else None, info.version)))
        previous = (info, manifest)
    return out
