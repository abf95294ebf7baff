"""`registry export fides`: the manifest in force as fideslang 3.x resources, validated with
fideslang's own models: ``organization.yml``, ``systems.yml`` and ``taxonomy.yml`` (the
extensions). Recipients and the controller's services (the activities' sources) are systems;
each activity is a privacy declaration per purpose on each recipient's system (on its sources'
systems when it has no recipient). What Fides has no field for rides in
``System.meta.dataflow_registry`` (and, for the controller's country and a data subject's
parent, in tags), so that importing the files declares the same manifest."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from fideslang.models import ContactDetails, DataCategory, DataFlow, DataSubject, DataUse, Organization, PrivacyDeclaration, System
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from registry.answers.flows import Observation, observations
from registry.exceptions import InputError
from registry.model.declarations import in_force, no_manifest_message
from registry.model.manifest import Activity, Manifest
from registry.model.transfers import EEA

from .fides_common import COUNTRY_TAG, EMPTY_TAG, PARENT_TAG
from .fides_map import LEGAL_BASIS_TO_FIDES, MECHANISM_TO_FIDES, ROLE_TO_FIDES

__all__ = ["fides_resources", "export_fides", "ExportResult", "REVIEW_TAG"]

REVIEW_TAG = "dataflow_registry:review"
_FIDES_KEY = re.compile(r"[^A-Za-z0-9_.<>-]+")


class ExportResult(BaseModel):
    out: str
    files: list[str]
    systems: int
    observed: int


def _key(text: str, taken: set[str]) -> str:
    base = _FIDES_KEY.sub("_", text).strip("_") or "system"
    key, n = base, 2
    while key in taken:
        key, n = f"{base}_{n}", n + 1
    taken.add(key)
    return key


def _contact(text: str | None) -> ContactDetails | None:
    """``name, email`` splits into the two fields (the importer joins them back); else all is the name."""
    if not text:
        return None
    name, _, tail = text.rpartition(", ")
    if name and "@" in tail and " " not in tail and ", ".join((name, tail)) == text:
        return ContactDetails(name=name, email=tail)
    return ContactDetails(name=text)


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True, exclude_defaults=True)


def fides_resources(manifest: Manifest, observed: list[Observation] | None = None) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """Pure: file name → Fides resource document, every resource built through fideslang's model."""
    c = manifest.controller
    taken: set[str] = {r.key for r in manifest.recipients}  # recipients keep their keys; the rest avoid them
    org_key = _key(c.name, taken)
    org = Organization(fides_key=org_key, name=c.name, controller=ContactDetails(name=c.name, address=c.address or "", email=c.contact or ""),
                       data_protection_officer=_contact(c.dpo), representative=_contact(c.representative),
                       tags=[f"{COUNTRY_TAG}{c.country}"] + [f"{EMPTY_TAG}{f}" for f in ("address", "contact", "dpo", "representative")
                                                             if getattr(c, f) == ""])
    source_keys = {s: _key(s.removeprefix("//"), taken) for s in dict.fromkeys(s for a in manifest.activities for s in a.sources)}
    holder = _key(f"{org_key}_processing", taken)  # holds activities with neither recipient nor source
    declarations: dict[str, list[tuple[PrivacyDeclaration, dict[str, Any]]]] = {}

    def declare(system: str, a: Activity, index: int) -> None:
        # fideslang refuses an empty egress/ingress on a declaration whose system lists none, so
        # "none" (which would otherwise inherit the system's flows) is said in meta, and so is the
        # order of the activity and of its lists, which Fides' structure does not keep
        part = {"activity": a.key, "index": index, **({"security_measures": a.security_measures} if a.security_measures is not None else {}),
                **({"retention": a.retention} if a.retention is not None else {}),
                "purposes": list(a.purposes), "recipients": list(a.recipients), "sources": list(a.sources)}
        for purpose in a.purposes:
            declarations.setdefault(system, []).append((PrivacyDeclaration(
                name=a.name, data_use=purpose, data_categories=a.data_categories, data_subjects=a.data_subjects,
                legal_basis_for_processing=LEGAL_BASIS_TO_FIDES[a.legal_basis], retention_period=a.retention,  # type: ignore[arg-type]
                ingress=[source_keys[s] for s in a.sources] or None), part))

    for index, a in enumerate(manifest.activities):
        for recipient in a.recipients:
            declare(recipient, a, index)
        if not a.recipients:
            for s in a.sources or [None]:  # type: ignore[list-item]
                declare(source_keys[s] if s else holder, a, index)
    systems = []
    for index, r in enumerate(manifest.recipients):
        meta = {"kind": "recipient", "index": index, "service": r.service, "role": r.role, "country": r.country,
                **({"contract": r.contract} if r.contract is not None else {}),
                **({"processor_of": r.processor_of} if r.processor_of else {}),
                **({"transfer_mechanism": r.transfer_mechanism} if r.transfer_mechanism not in MECHANISM_TO_FIDES else {})}
        systems.append(_system(r.key, r.name, org_key, "Third Party", declarations.get(r.key, []), meta,
                               responsibility=[ROLE_TO_FIDES[r.role]], dpa_location=r.contract,
                               does_international_transfers=r.country not in EEA,
                               legal_basis_for_transfers=[MECHANISM_TO_FIDES[r.transfer_mechanism]] if r.transfer_mechanism in MECHANISM_TO_FIDES else [],
                               egress=[DataFlow(fides_key=k.key, type="system") for k in manifest.recipients if k.processor_of == r.key] or None))
    for source, key in source_keys.items():
        feeds = sorted({r for a in manifest.activities if source in a.sources for r in a.recipients})
        systems.append(_system(key, source, org_key, "Service", declarations.get(key, []), {"kind": "source", "source": source},
                               egress=[DataFlow(fides_key=r, type="system") for r in feeds] or None))
    if holder in declarations:
        systems.append(_system(holder, f"{c.name}: processing without recipients", org_key, "Service", declarations[holder],
                               {"kind": "holder"}))
    systems += _observed(manifest, observed or [], org_key, taken)
    taxonomy: dict[str, list[dict[str, Any]]] = {}
    for kind, items in manifest.taxonomy.items():
        for e in items:
            fields: dict[str, Any] = {"fides_key": e.key, "name": e.name, "description": e.description, "organization_fides_key": org_key}
            if kind == "data_subjects":
                model: BaseModel = DataSubject(**fields, tags=[f"{PARENT_TAG}{e.parent}"] if e.parent else None)
            else:
                model = (DataCategory if kind == "data_categories" else DataUse)(**fields, parent_key=e.parent)
            taxonomy.setdefault({"data_categories": "data_category", "data_uses": "data_use", "data_subjects": "data_subject"}[kind],
                                []).append(_dump(model))
    files = {"organization.yml": {"organization": [_dump(org)]}, "systems.yml": {"system": systems}}
    if taxonomy:
        files["taxonomy.yml"] = taxonomy
    return files


def _system(key: str, name: str, org_key: str, system_type: str, parts: list[tuple[PrivacyDeclaration, dict[str, Any]]],
            meta: dict[str, Any], **fields: Any) -> dict[str, Any]:
    # fideslang sorts declarations by name (a stable sort): sorted first, the meta list stays aligned
    parts = sorted(parts, key=lambda p: p[0].name or "")
    if parts:
        meta = {**meta, "declarations": [p for _, p in parts]}
    # fideslang refuses a declaration's ingress the system itself does not list
    ingress = sorted({k for d, _ in parts for k in d.ingress or []})
    if ingress:
        fields["ingress"] = [DataFlow(fides_key=k, type="system") for k in ingress]
    system = System(fides_key=key, name=name, organization_fides_key=org_key, system_type=system_type,
                    privacy_declarations=[d for d, _ in parts], meta={"dataflow_registry": meta},
                    **{k: v for k, v in fields.items() if v is not None})
    return _dump(system)


def _observed(manifest: Manifest, found: list[Observation], org_key: str, taken: set[str]) -> list[dict[str, Any]]:
    """Recipients events name that the manifest does not: systems tagged for review, declaring
    what was observed (each data use with the categories seen for it)."""
    seen: dict[str, dict[str, set[str]]] = {}
    counts: dict[str, int] = {}
    for o in found:
        if manifest.recipient(o.recipient) is None:
            seen.setdefault(o.recipient, {}).setdefault(o.purpose, set()).update(o.categories)
            counts[o.recipient] = counts.get(o.recipient, 0) + o.events
    out = []
    for recipient in sorted(seen):
        decls: list[tuple[PrivacyDeclaration, dict[str, Any]]] = [(PrivacyDeclaration(name=f"Observed: {use}", data_use=use, data_categories=sorted(cats), data_subjects=[]), {})
                 for use, cats in sorted(seen[recipient].items())]
        meta = {"kind": "observed", "recipient": recipient, "events": counts[recipient],
                "review": "observed in events but not in the manifest: review, then declare it (or stop the flow)"}
        system = _system(_key(recipient, taken), recipient, org_key, "Third Party", decls, meta, tags=[REVIEW_TAG])
        system["meta"]["dataflow_registry"].pop("declarations", None)
        out.append(system)
    return out


def export_fides(engine: Engine, out_dir: Path, observed: bool = False, as_of: datetime | None = None) -> ExportResult:
    with engine.connect() as conn:
        manifest = in_force(conn, as_of)
        if manifest is None:
            raise InputError(no_manifest_message(as_of))
        found = observations(conn, until=as_of) if observed else []
    files = fides_resources(manifest, found)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for name, document in files.items():
            (out_dir / name).write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write: {exc.strerror}", str(out_dir)) from None
    systems = files["systems.yml"]["system"]
    return ExportResult(out=str(out_dir), files=sorted(files), systems=len(systems),
                        observed=sum(1 for s in systems if s["meta"]["dataflow_registry"]["kind"] == "observed"))
