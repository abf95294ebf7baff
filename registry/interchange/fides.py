"""`registry import fides`: Fides resource files (fideslang 1.x to 3.x) read into a manifest.

The raw YAML is read, not fideslang's models: 1.x files carry keys 3.x refuses
(``third_country_transfers``, ``data_responsibility_title``, ``data_qualifier``), and those are
the ones a RoPA needs. What maps is in :mod:`.fides_map` and the README; every other key with a
value is listed in ``unmapped`` with the reason. The manifest written always declares: it is
validated like ``registry declare`` validates a file before it is returned."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml
from pydantic import BaseModel

from ..exceptions import InputError
from ..manifest import Manifest, manifest_from_document
from ..taxonomy import Kind, Taxonomy, default_taxonomy, valid_key
from .fides_map import DEFAULT_REASON, LEGAL_BASIS_FROM_FIDES, REASONS, alpha2, upgrade_key, upgrade_prefix

__all__ = ["Unmapped", "ImportResult", "Imported", "import_fides", "read_resources", "manifest_yaml", "COUNTRY_TAG", "PARENT_TAG"]

RESOURCE_KINDS = ("organization", "system", "dataset", "data_category", "data_use", "data_subject", "data_qualifier", "policy",
                  "registry", "evaluation")
TAXONOMY_KINDS: tuple[tuple[str, Kind], ...] = (("data_category", "data_categories"), ("data_use", "data_uses"),
                                                ("data_subject", "data_subjects"))
# Fides has no field for these: they ride in tags of the organization / a data subject
COUNTRY_TAG = "dataflow_registry:country="
PARENT_TAG = "dataflow_registry:parent="
UNKNOWN_COUNTRY = "ZZ"  # ISO 3166 user-assigned "unknown": valid, and visibly not a real country

_TAXONOMY_FIELDS = {"fides_key", "parent_key", "name", "description", "organization_fides_key", "tags", "is_default", "version_added",
                    "version_deprecated", "replaced_by", "active", "legal_basis"}
_ORG_FIELDS = {"fides_key", "name", "controller", "data_protection_officer", "representative", "tags", "organization_fides_key",
               "organization_parent_key"}
_SYSTEM_FIELDS = {"fides_key", "name", "meta", "system_type", "vendor_id", "previous_vendor_id", "responsibility",
                  "data_responsibility_title", "third_country_transfers", "legal_basis_for_transfers", "does_international_transfers",
                  "dpa_location", "egress", "ingress", "privacy_declarations", "organization_fides_key", "tags", "data_security_practices"}
_DECLARATION_FIELDS = {"name", "data_use", "data_categories", "data_subjects", "egress", "ingress", "legal_basis_for_processing",
                       "retention_period"}


class Unmapped(BaseModel):
    path: str
    reason: str


class ImportResult(BaseModel):
    recipients: int
    activities: int
    unmapped: list[Unmapped]


@dataclass
class Imported:
    manifest: Manifest
    unmapped: list[Unmapped]

    def summary(self) -> ImportResult:
        return ImportResult(recipients=len(self.manifest.recipients), activities=len(self.manifest.activities), unmapped=self.unmapped)


def manifest_yaml(manifest: Manifest) -> str:
    return yaml.safe_dump(manifest.model_dump(exclude_defaults=True), sort_keys=False, allow_unicode=True)


Resources = dict[str, list[tuple[str, dict[str, Any]]]]


def read_resources(paths: Iterable[str | Path], notes: list[Unmapped]) -> Resources:
    """Every Fides resource in the files (folders: their ``*.yml``/``*.yaml``, recursively), by
    kind, each with the path it is reported under (``file:system[2]``)."""
    found: Resources = {kind: [] for kind in RESOURCE_KINDS}
    for given in paths:
        path = Path(given)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml") and p.is_file())
        elif path.is_file():
            files = [path]
        else:
            raise InputError("no such file or folder", str(given))
        for file in files:
            try:
                document = yaml.safe_load(file.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
                raise InputError(f"cannot read as YAML: {exc}", str(file)) from None
            if not isinstance(document, dict):
                notes.append(Unmapped(path=str(file), reason="not a Fides resource file (no mapping of resource kinds)"))
                continue
            for kind, items in document.items():
                if kind in RESOURCE_KINDS and isinstance(items, list):
                    found[kind] += [(f"{file}:{kind}[{i}]", item) for i, item in enumerate(items) if isinstance(item, dict)]
                else:
                    notes.append(Unmapped(path=f"{file}:{kind}", reason="not a Fides resource kind"))
    if not any(found.values()):
        raise InputError("no Fides resources (organization, system, dataset, data_category, data_use, data_subject) found", "PATH")
    return found


@dataclass
class _Part:
    """One privacy declaration, read: a part of an activity."""

    key: str | None
    name: str
    purpose: str
    categories: list[str]
    subjects: list[str]
    legal_basis: str
    retention: str | None
    security: str | None
    recipients: list[str]
    sources: list[str]


@dataclass
class _Importer:
    resources: Resources
    notes: list[Unmapped] = field(default_factory=list)
    taxonomy: Taxonomy = field(default_factory=default_taxonomy)
    use_basis: dict[str, str] = field(default_factory=dict)

    def note(self, path: str, reason: str) -> None:
        self.notes.append(Unmapped(path=path, reason=reason))

    def leftovers(self, path: str, resource: dict[str, Any], mapped: set[str], defaults: dict[str, Any] | None = None) -> None:
        """Report every key with a value that nothing mapped (a value equal to fideslang's default says nothing)."""
        for key, value in resource.items():
            if key in mapped or value in (None, "", [], {}, False) or (defaults and defaults.get(key) == value):
                continue
            self.note(f"{path}.{key}", REASONS.get(key, DEFAULT_REASON))

    # -- taxonomy ---------------------------------------------------------------------------
    def extensions(self) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        pending: list[tuple[Kind, str, dict[str, Any]]] = []
        for resource_kind, kind in TAXONOMY_KINDS:
            for path, res in self.resources[resource_kind]:
                self.leftovers(path, res, _TAXONOMY_FIELDS)
                key = str(res.get("fides_key") or "")
                if resource_kind == "data_use" and res.get("legal_basis"):
                    basis = LEGAL_BASIS_FROM_FIDES.get(str(res["legal_basis"]).strip().lower())
                    if basis:
                        self.use_basis[key] = basis
                    else:
                        self.note(f"{path}.legal_basis", f"no GDPR Art. 6 basis matches {res['legal_basis']!r}")
                if not valid_key(key):
                    self.note(path, f"{key!r} is not a taxonomy key")
                    continue
                if self.taxonomy.has(kind, upgrade_prefix(kind, key)):
                    continue  # already in the default taxonomy (under its 1.x or 3.x key)
                pending.append((kind, path, res))
        # parents first: a child of another extension needs its parent in the taxonomy
        for kind, path, res in sorted(pending, key=lambda p: str(p[2]["fides_key"]).count(".")):
            key = upgrade_prefix(kind, str(res["fides_key"]))
            parent = res.get("parent_key") or next((t[len(PARENT_TAG):] for t in res.get("tags") or [] if t.startswith(PARENT_TAG)), None)
            parent = upgrade_prefix(kind, str(parent)) if parent else None
            ext = {"key": key, "parent": parent, **{k: res[k] for k in ("name", "description") if res.get(k)}}
            try:
                self.taxonomy = self.taxonomy.extend({kind: [_term(ext)]})
            except ValueError as exc:
                self.note(path, f"taxonomy extension left out: {exc}")
                continue
            out.setdefault(kind, []).append(ext)
        return out

    def key(self, kind: Kind, value: Any, path: str) -> str | None:
        known, reason = upgrade_key(kind, str(value), self.taxonomy) if valid_key(str(value)) else (None, f"{value!r} is not a key")
        if reason:
            self.note(path, reason)
        return known

    # -- organization -----------------------------------------------------------------------
    def controller(self) -> dict[str, Any]:
        orgs = self.resources["organization"]
        if not orgs:
            self.note("organization", "no Fides organization: the controller is named '(no Fides organization)', country ZZ")
            return {"name": "(no Fides organization)", "country": UNKNOWN_COUNTRY}
        for path, _ in orgs[1:]:
            self.note(path, "only the first organization is the controller")
        path, org = orgs[0]
        self.leftovers(path, org, _ORG_FIELDS)
        contact = org.get("controller") or {}
        name = contact.get("name") or org.get("name") or str(org.get("fides_key") or "(unnamed organization)")
        country = next((t[len(COUNTRY_TAG):] for t in org.get("tags") or [] if t.startswith(COUNTRY_TAG)), None)
        if country is None and contact.get("address"):
            country = alpha2(str(contact["address"]).rsplit(",", 1)[-1].strip())
        if country is None:
            self.note(f"{path}.controller.address", "no country found (Fides has no country field): controller country ZZ, set it")
            country = UNKNOWN_COUNTRY
        return {"name": name, "country": country, **_some(address=contact.get("address"), contact=_joined(contact, ("email", "phone"), "; "),
                                                        dpo=_joined(org.get("data_protection_officer")),
                                                        representative=_joined(org.get("representative")))}


def _term(ext: dict[str, Any]) -> Any:
    from ..taxonomy import Term

    return Term(ext["key"], ext["parent"], ext.get("name") or ext["key"].rsplit(".", 1)[-1], ext.get("description") or "")


def _joined(contact: Any, fields: tuple[str, ...] = ("name", "address", "email", "phone"), sep: str = ", ") -> str | None:
    """Fides contact details as the manifest's one string (``name, email``)."""
    if not isinstance(contact, dict):
        return str(contact) if contact else None
    return sep.join(str(contact[f]) for f in fields if contact.get(f)) or None


def _some(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


_SLUG = re.compile(r"[^a-z0-9._-]+")
_MANIFEST_KEY = re.compile(r"^[a-z0-9][a-z0-9._-]{0,127}$")


def slug(text: str, taken: set[str], fallback: str = "item") -> str:
    """A manifest key (``^[a-z0-9][a-z0-9._-]{0,127}$``) from ``text`` (itself when it is one),
    unique among ``taken``."""
    base = text if _MANIFEST_KEY.match(text) else _SLUG.sub("-", text.lower()).strip("-._")[:120] or fallback
    key, n = base, 2
    while key in taken:
        key, n = f"{base}-{n}", n + 1
    taken.add(key)
    return key


def import_fides(paths: Iterable[str | Path]) -> Imported:
    notes: list[Unmapped] = []
    resources = read_resources(paths, notes)
    from .fides_systems import build_manifest

    importer = _Importer(resources, notes)
    document = build_manifest(importer)
    return Imported(manifest=manifest_from_document(document), unmapped=importer.notes)
