"""The manifest: the controller's declarations (recipients, processing activities, taxonomy
extensions). Loaded from YAML or JSON, validated against ``schemas/manifest.schema.json`` and
then for meaning (known keys, sub-processor chains without cycles)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from registry.exceptions import ManifestError

from .retention import period_start
from .schemas import SchemaViolation, validator
from .taxonomy import Kind, Taxonomy, Term, default_taxonomy

__all__ = ["Controller", "Recipient", "Activity", "Extension", "RegistryRetention", "Manifest", "load_manifest", "parse_manifest"]

LegalBasis = Literal["consent", "contract", "legal_obligation", "vital_interests", "public_task", "legitimate_interests"]
Mechanism = Literal["adequacy", "scc", "bcr", "derogation", "none"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Controller(_Model):
    name: str
    country: str
    address: str | None = None
    contact: str | None = None
    dpo: str | None = None
    representative: str | None = None


class Recipient(_Model):
    key: str
    name: str
    service: str
    role: str
    country: str
    transfer_mechanism: Mechanism | None = None
    processor_of: str | None = None
    contract: str | None = None


class Activity(_Model):
    key: str
    name: str
    purposes: list[str]
    legal_basis: LegalBasis
    data_subjects: list[str] = Field(default_factory=list)
    data_categories: list[str]
    recipients: list[str]
    sources: list[str] = Field(default_factory=list)
    retention: str | None = None
    security_measures: str | None = None


class Extension(_Model):
    key: str
    parent: str | None
    name: str | None = None
    description: str | None = None


class RegistryRetention(_Model):
    """How long the registry keeps its own data (contract §6); None: kept."""

    events: str | None = None
    subject_refs: str | None = None
    dead_letters: str | None = None


class Manifest(_Model):
    controller: Controller
    recipients: list[Recipient]
    activities: list[Activity]
    # Art. 28(2)/(4): the days customers get to object to an announced recipient change (§8)
    notice_period_days: int = 30
    taxonomy: dict[Kind, list[Extension]] = Field(default_factory=dict)
    registry_retention: RegistryRetention | None = None

    def recipient(self, key: str) -> Recipient | None:
        return self.recipient_map().get(key)

    def recipient_map(self) -> dict[str, Recipient]:
        return {r.key: r for r in self.recipients}

    def taxonomy_view(self) -> Taxonomy:
        """The default taxonomy with this manifest's extensions."""
        return extend_taxonomy(default_taxonomy(), self.taxonomy)

    def processor_chain(self, key: str) -> list[str]:
        """Keys from the controller side down to ``key`` (``[aws, stripe]`` for stripe→aws)."""
        by_key = self.recipient_map()
        chain = [key]
        while (parent := by_key[chain[0]].processor_of) is not None:
            chain.insert(0, parent)
        return chain


def extend_taxonomy(base: Taxonomy, extensions: dict[Kind, list[Extension]]) -> Taxonomy:
    return base.extend(
        {
            kind: [Term(e.key, e.parent, e.name or e.key.rsplit(".", 1)[-1], e.description or "") for e in items]
            for kind, items in extensions.items()
        }
    )


def load_manifest(path: str | Path) -> Manifest:
    """Read and validate a manifest file (YAML or JSON). Raises ManifestError naming the field."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ManifestError(f"cannot read manifest: {exc.strerror}", str(path)) from None
    return parse_manifest(text)


def parse_manifest(text: str) -> Manifest:
    try:
        import yaml  # only a manifest read from YAML needs it

        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(f"not valid YAML: {exc}") from None
    return manifest_from_document(document)


def manifest_from_document(document: Any) -> Manifest:
    try:
        validator("manifest")(document)
    except SchemaViolation as exc:
        raise ManifestError(exc.message, exc.path or "(root)") from None
    _check_characters(document, "")
    manifest = Manifest.model_validate(document)
    _check_meaning(manifest)
    return manifest


# control characters (C0, DEL, C1) and the XML non-characters: a name is printed on pages, in
# tables and in an XML feed, where they break the document or hide text. Line breaks and tabs
# are kept only in the free-text fields written as paragraphs.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufffe\uffff\ud800-\udfff]")
_LINE_BREAKS = re.compile("[\t\n\r]")
_MULTILINE_FIELDS = frozenset({"address", "security_measures"})


def _check_characters(value: Any, path: str) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            where = f"{path}.{k}" if path else str(k)
            _check_characters(k, where)
            _check_characters(v, where)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_characters(v, f"{path}[{i}]")
    elif isinstance(value, str):
        found = _CONTROL.search(value) or (None if path.rsplit(".", 1)[-1] in _MULTILINE_FIELDS else _LINE_BREAKS.search(value))
        if found:
            raise ManifestError(f"control character U+{ord(found.group()):04X} not allowed", path or "(root)")


def _check_meaning(m: Manifest) -> None:
    try:
        taxonomy = m.taxonomy_view()
    except ValueError as exc:
        raise ManifestError(str(exc), "taxonomy") from None
    _unique([r.key for r in m.recipients], "recipients")
    _unique([a.key for a in m.activities], "activities")
    keys = {r.key for r in m.recipients}
    for i, r in enumerate(m.recipients):
        if r.processor_of is not None and r.processor_of not in keys:
            raise ManifestError(f"unknown recipient {r.processor_of!r}", f"recipients[{i}].processor_of")
    for i, r in enumerate(m.recipients):
        seen = {r.key}
        parent = r.processor_of
        while parent is not None:
            if parent in seen:
                raise ManifestError(f"sub-processor chain of {r.key!r} has a cycle through {parent!r}", f"recipients[{i}].processor_of")
            seen.add(parent)
            parent = m.recipient_map()[parent].processor_of
    _check_retention(m.registry_retention)
    checks: tuple[tuple[str, Kind], ...] = (("purposes", "data_uses"), ("data_categories", "data_categories"), ("data_subjects", "data_subjects"))
    for i, a in enumerate(m.activities):
        for j, key in enumerate(a.recipients):
            if key not in keys:
                raise ManifestError(f"unknown recipient {key!r}", f"activities[{i}].recipients[{j}]")
        for attr, kind in checks:
            for j, key in enumerate(getattr(a, attr)):
                if not taxonomy.has(kind, key):
                    raise ManifestError(f"unknown {_LABEL[kind]} {key!r}", f"activities[{i}].{attr}[{j}]")


def _check_retention(r: RegistryRetention | None) -> None:
    """Event bodies carry subject refs: keeping events longer than the subject index (or for ever
    while the index is purged) would keep the refs the index retention promises to remove."""
    if r is None or r.subject_refs is None:
        return
    reference = datetime(2000, 3, 1, tzinfo=timezone.utc)
    if r.events is None or period_start(reference, r.events) < period_start(reference, r.subject_refs):
        raise ManifestError("events are kept longer than subject_refs, and event bodies hold the subject refs: "
                            "set registry_retention.events to at most the subject_refs period", "registry_retention.events")


_LABEL: dict[Kind, str] = {"data_categories": "data category", "data_uses": "purpose (data use)", "data_subjects": "data subject category"}


def _unique(keys: list[str], where: str) -> None:
    seen: set[str] = set()
    for i, key in enumerate(keys):
        if key in seen:
            raise ManifestError(f"duplicate key {key!r}", f"{where}[{i}].key")
        seen.add(key)

