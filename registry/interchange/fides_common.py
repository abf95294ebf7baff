"""What the Fides reader (:mod:`.fides`) and the system mapper (:mod:`.fides_systems`) share: the
resources read, the importer's state and notes, the fields each resource kind maps, and the
tags this registry writes into Fides files. Neither of the two imports the other for these."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from registry.model.taxonomy import Kind, Taxonomy, Term, default_taxonomy, valid_key

from .fides_map import DEFAULT_REASON, LEGAL_BASIS_FROM_FIDES, REASONS, alpha2, upgrade_key, upgrade_prefix

__all__ = ["COUNTRY_TAG", "PARENT_TAG", "EMPTY_TAG", "SYSTEM_FIELDS", "DECLARATION_FIELDS", "Unmapped", "Resources", "Part", "Importer", "some", "slug"]


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


SYSTEM_FIELDS = {"fides_key", "name", "meta", "system_type", "vendor_id", "previous_vendor_id", "responsibility",
                  "data_responsibility_title", "third_country_transfers", "legal_basis_for_transfers", "does_international_transfers",
                  "dpa_location", "egress", "ingress", "privacy_declarations", "organization_fides_key", "tags", "data_security_practices"}


DECLARATION_FIELDS = {"name", "data_use", "data_categories", "data_subjects", "egress", "ingress", "legal_basis_for_processing",
                       "retention_period"}


class Unmapped(BaseModel):
    path: str
    reason: str


Resources = dict[str, list[tuple[str, dict[str, Any]]]]


@dataclass
class Part:
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
    # this registry's export: the activity's place in the manifest and its lists in their order
    index: int | None = None
    order: dict[str, list[str]] = field(default_factory=dict)


EMPTY_TAG = "dataflow_registry:empty="  # a controller field that is "" (Fides drops empty strings)


@dataclass
class Importer:
    resources: Resources
    notes: list[Unmapped] = field(default_factory=list)
    taxonomy: Taxonomy = field(default_factory=default_taxonomy)
    use_basis: dict[str, str] = field(default_factory=dict)
    # Fides key → the key its extension was declared under (renamed, re-parented)
    renamed: dict[Kind, dict[str, str]] = field(default_factory=lambda: {kind: {} for _, kind in TAXONOMY_KINDS})
    # the resource being read: a shape nothing foresaw is reported there, not as "somewhere"
    where: str = "the Fides files"

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
        """The Fides taxonomy resources that the default taxonomy lacks, as manifest extensions.
        Their keys and parents go through the same fideslang 1.x→2.x/3.x renames as references
        (``provide.service.operations.e-commerce`` under ``provide.service.operations`` becomes
        ``essential.service.operations.e_commerce``); a parent that no longer exists climbs to its
        nearest known ancestor. Every reference to the Fides key then finds the new key."""
        out: dict[str, list[dict[str, Any]]] = {}
        pending: list[tuple[Kind, str, dict[str, Any]]] = []
        for resource_kind, kind in TAXONOMY_KINDS:
            for path, res in self.resources[resource_kind]:
                self.where = path
                self.leftovers(path, res, _TAXONOMY_FIELDS)
                key = str(res.get("fides_key") or "")
                if resource_kind == "data_use" and res.get("legal_basis"):
                    basis = LEGAL_BASIS_FROM_FIDES.get(str(res["legal_basis"]).strip().lower())
                    if basis:
                        self.use_basis[key] = basis
                    else:
                        self.note(f"{path}.legal_basis", f"no GDPR Art. 6 basis matches {res['legal_basis']!r}")
                if not valid_key(registry_key(key)):
                    self.note(path, f"{key!r} is not a taxonomy key")
                    continue
                if self.taxonomy.has(kind, upgrade_prefix(kind, registry_key(key))):
                    continue  # already in the default taxonomy (under its 1.x or 3.x key)
                pending.append((kind, path, res))
        # parents first: a child of another extension needs its parent in the taxonomy
        for kind, path, res in sorted(pending, key=lambda p: str(p[2]["fides_key"]).count(".")):
            self.where = path
            fides_key = str(res["fides_key"])
            raw_parent = res.get("parent_key") or next((t[len(PARENT_TAG):] for t in res.get("tags") or [] if t.startswith(PARENT_TAG)), None)
            parent = self._parent(kind, str(raw_parent), path) if raw_parent else None
            key = upgrade_prefix(kind, registry_key(fides_key))
            if parent is not None and not key.startswith(parent + "."):
                key = f"{parent}.{key.rsplit('.', 1)[-1]}"  # under the parent it now has
            if key != upgrade_prefix(kind, fides_key):  # a plain fideslang rename maps silently, as references do
                why = "the registry's keys have no hyphens" if "-" in fides_key else "under the parent it has in fideslang 2.x/3.x"
                self.note(path, f"{fides_key} is declared as {key} ({why})")
            # an empty name or description is a value the manifest declared (issue 21 round trip)
            ext = {"key": key, "parent": parent, **{k: res[k] for k in ("name", "description") if res.get(k) is not None}}
            try:
                self.taxonomy = self.taxonomy.extend({kind: [_term(ext)]})
            except ValueError as exc:
                self.note(path, f"taxonomy extension left out: {exc}")
                continue
            self.renamed[kind][fides_key] = key
            if fides_key in self.use_basis:
                self.use_basis[key] = self.use_basis[fides_key]
            out.setdefault(kind, []).append(ext)
        return out

    def _parent(self, kind: Kind, fides_key: str, path: str) -> str | None:
        """The key an extension's Fides parent has now: renamed as another extension, renamed by
        fideslang, or its nearest known ancestor (reported); None when nothing of it is known."""
        if fides_key in self.renamed[kind]:
            return self.renamed[kind][fides_key]
        known, reason = upgrade_key(kind, registry_key(fides_key), self.taxonomy)
        if reason:
            self.note(f"{path}.parent_key", reason if known else f"{fides_key} is not in the taxonomy: declared as a top-level key")
        return known

    def key(self, kind: Kind, value: Any, path: str) -> str | None:
        text = str(value)
        if text in self.renamed[kind]:
            return self.renamed[kind][text]
        text = registry_key(text)
        known, reason = upgrade_key(kind, text, self.taxonomy) if valid_key(text) else (None, f"{value!r} is not a key")
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
        self.where = path
        self.leftovers(path, org, _ORG_FIELDS)
        contact = org.get("controller") or {}
        if not isinstance(contact, dict):
            self.note(f"{path}.controller", "not a mapping of name, address, email and phone: left out")
            contact = {}
        name = contact.get("name") or org.get("name") or str(org.get("fides_key") or "(unnamed organization)")
        country = next((t[len(COUNTRY_TAG):] for t in org.get("tags") or [] if t.startswith(COUNTRY_TAG)), None)
        if country is None and contact.get("address"):
            country = alpha2(str(contact["address"]).rsplit(",", 1)[-1].strip())
        if country is None:
            self.note(f"{path}.controller.address", "no country found (Fides has no country field): controller country ZZ, set it")
            country = UNKNOWN_COUNTRY
        empty = {t[len(EMPTY_TAG):] for t in org.get("tags") or [] if t.startswith(EMPTY_TAG)}
        return {"name": name, "country": country, **some(address=contact.get("address"), contact=_joined(contact, ("email", "phone"), "; "),
                                                        dpo=_joined(org.get("data_protection_officer")),
                                                        representative=_joined(org.get("representative"))),
                **{f: "" for f in sorted(empty) if f in ("address", "contact", "dpo", "representative")}}


def registry_key(fides_key: str) -> str:
    """Fides keys may hold hyphens (``e-commerce``); the registry's keys (and its events) do not."""
    return fides_key.replace("-", "_")


def _term(ext: dict[str, Any]) -> Any:
    return Term(ext["key"], ext["parent"], ext.get("name") or ext["key"].rsplit(".", 1)[-1], ext.get("description") or "")


def _joined(contact: Any, fields: tuple[str, ...] = ("name", "address", "email", "phone"), sep: str = ", ") -> str | None:
    """Fides contact details as the manifest's one string (``name, email``)."""
    if not isinstance(contact, dict):
        return str(contact) if contact else None
    return sep.join(str(contact[f]) for f in fields if contact.get(f)) or None


def some(**values: Any) -> dict[str, Any]:
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
