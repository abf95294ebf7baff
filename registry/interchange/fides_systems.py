"""Fides systems and their privacy declarations → the manifest's recipients and activities.

A system is a **recipient** when it says so in ``meta.dataflow_registry.kind`` (this registry's
export) or looks like a third party: a ``vendor_id``, a ``system_type`` naming a third party, a
``responsibility`` / ``data_responsibility_title`` of Processor or Sub-Processor, or
``third_country_transfers``. Every other system is one of the controller's own services: a
**source** (``//services/<fides_key>`` unless ``meta.dataflow_registry.source`` names it).
Each privacy declaration is part of an activity: on a recipient's system it names that
recipient; on a source's system its ``egress`` (else the system's) names the recipients."""

from __future__ import annotations

from typing import Any

from fideslang.models import System

from .fides_common import DECLARATION_FIELDS, SYSTEM_FIELDS, Importer, Part, slug, some
from .fides_map import LEGAL_BASIS_FROM_FIDES, MECHANISM_FROM_FIDES, REASONS, THIRD_PARTY_TYPES, alpha2, role_from_fides, service_from_uses

__all__ = ["build_manifest", "is_recipient"]

_SYSTEM_DEFAULTS = {name: f.default for name, f in System.model_fields.items() if not f.is_required() and f.default_factory is None}


def is_recipient(system: dict[str, Any]) -> bool:
    titles = _titles(system)
    system_type = str(system.get("system_type") or "").lower()
    return bool(system.get("vendor_id") or system.get("previous_vendor_id") or system.get("third_country_transfers")
                or any(t in system_type for t in THIRD_PARTY_TYPES)
                or {"processor", "sub-processor"} & {t.lower() for t in titles})


def _titles(system: dict[str, Any]) -> list[str]:
    titles = system.get("responsibility") or []
    if system.get("data_responsibility_title"):
        titles = [*titles, system["data_responsibility_title"]]
    return [str(t) for t in titles]


def _flows(items: Any) -> list[str]:
    """Keys of an egress/ingress list: 3.x declarations list keys, systems list DataFlow objects."""
    return [str(i.get("fides_key")) if isinstance(i, dict) else str(i) for i in _list(items)]


def _list(value: Any) -> list[Any]:
    """A list field as a list: fideslang allows nothing else, so anything else counts as absent
    (a wrong shape is reported by :func:`_shapes`, never a traceback)."""
    return value if isinstance(value, list) else []


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


_LISTS = ("privacy_declarations", "egress", "ingress", "responsibility", "third_country_transfers", "legal_basis_for_transfers",
          "tags")
_DECLARATION_LISTS = ("data_categories", "data_subjects", "egress", "ingress")


def _shapes(imp: Importer, path: str, res: dict[str, Any]) -> None:
    """Report the fields of a system whose shape fideslang does not allow; they are read as absent."""
    for name in _LISTS:
        if res.get(name) is not None and not isinstance(res[name], list):
            imp.note(f"{path}.{name}", "not a list: left out")
    if res.get("meta") is not None and not isinstance(res["meta"], dict):
        imp.note(f"{path}.meta", "not a mapping: left out")
    for j, decl in enumerate(_list(res.get("privacy_declarations"))):
        if not isinstance(decl, dict):
            imp.note(f"{path}.privacy_declarations[{j}]", "not a privacy declaration (a mapping of data_use, data_categories, ...): left out")
            continue
        for name in _DECLARATION_LISTS:
            if decl.get(name) is not None and not isinstance(decl[name], list):
                imp.note(f"{path}.privacy_declarations[{j}].{name}", "not a list: left out")


def build_manifest(imp: Importer) -> dict[str, Any]:

    extensions = imp.extensions()
    controller = imp.controller()
    systems = []
    for path, res in imp.resources["system"]:
        imp.where = path
        if not isinstance(res.get("fides_key"), str) or not res["fides_key"]:
            imp.note(f"{path}.fides_key", "a system needs a fides_key (a text such as stripe): this system is left out")
            continue
        _shapes(imp, path, res)
        meta = _mapping(_mapping(res.get("meta")).get("dataflow_registry"))
        kind = meta.get("kind") or ("recipient" if is_recipient(res) else "source")
        if kind == "observed":
            imp.note(path, "marked for review (`export fides --observed`): an observed recipient nobody declared yet")
            continue
        systems.append((path, res, meta, kind))
    taken: set[str] = set()
    keys = {str(res.get("fides_key")): slug(str(res.get("fides_key") or res.get("name") or "system"), taken, "system")
            for _, res, _, kind in systems if kind == "recipient"}
    sources = {str(res.get("fides_key")): meta.get("source") or f"//services/{res.get('fides_key')}"
               for _, res, meta, kind in systems if kind == "source"}

    parts: list[Part] = []
    for path, res, meta, kind in systems:
        imp.where = path
        imp.leftovers(path, res, SYSTEM_FIELDS, _SYSTEM_DEFAULTS)
        for key in _mapping(res.get("meta")):
            if key != "dataflow_registry":
                imp.note(f"{path}.meta.{key}", "meta keys of other tools have no manifest field")
        if res.get("data_security_practices") and not res.get("privacy_declarations"):
            imp.note(f"{path}.data_security_practices", "security measures belong to activities; this system declares none")
        own = [keys[str(res["fides_key"])]] if kind == "recipient" else []
        system_egress = [keys[k] for k in _flows(res.get("egress")) if k in keys]
        system_ingress = [sources[k] for k in _flows(res.get("ingress")) if k in sources]
        meta_parts = _list(meta.get("declarations"))
        for j, decl in enumerate(_list(res.get("privacy_declarations"))):
            if not isinstance(decl, dict):
                continue  # reported by _shapes
            decl = {k: v for k, v in decl.items() if not (k in _DECLARATION_LISTS and v is not None and not isinstance(v, list))}
            where = imp.where = f"{path}.privacy_declarations[{j}]"
            imp.leftovers(where, decl, DECLARATION_FIELDS)
            dm = meta_parts[j] if j < len(meta_parts) and isinstance(meta_parts[j], dict) else {}
            part = _part(imp, where, decl, dm, res, kind, own, system_egress, system_ingress, keys, sources)
            if part is not None:
                parts.append(part)
    used = {s for p in parts for s in p.sources}
    for path, res, _, kind in systems:
        # one of the controller's own services that declares nothing and that no declaration names
        # as its source: it adds nothing to the manifest, and says so
        if kind == "source" and sources[str(res["fides_key"])] not in used \
                and not any(isinstance(d, dict) for d in _list(res.get("privacy_declarations"))):
            imp.note(path, "a system of the controller's own (not a third party: no vendor_id, third-party system_type, "
                           "processor responsibility or third_country_transfers) with no privacy declarations: left out")
    # a recipient's kind follows from the data uses it receives data for, wherever declared
    recipients = [_recipient(imp, path, res, meta, keys, controller["country"],
                             [p.purpose for p in parts if keys[str(res["fides_key"])] in p.recipients])
                  for path, res, meta, kind in systems if kind == "recipient"]
    places = {keys[str(res["fides_key"])]: meta.get("index") for _, res, meta, kind in systems if kind == "recipient"}
    recipients.sort(key=lambda r: (not isinstance(places[r["key"]], int), places[r["key"]] if isinstance(places[r["key"]], int) else 0))
    for path, _ in imp.resources["dataset"]:
        imp.note(path, REASONS["dataset_references"])
    for kind in ("data_qualifier", "policy", "registry", "evaluation"):
        for path, _ in imp.resources[kind]:
            imp.note(path, REASONS["data_qualifier"] if kind == "data_qualifier" else f"Fides {kind} resources have no manifest equivalent")
    known = {r["key"] for r in recipients}
    for r in recipients:
        if r.get("processor_of") not in (None, *known):
            r.pop("processor_of")
    return {"controller": controller, "recipients": recipients, "activities": _activities(parts), **({"taxonomy": extensions} if extensions else {})}


def _part(imp: Importer, where: str, decl: dict[str, Any], dm: dict[str, Any], system: dict[str, Any], kind: str, own: list[str],
          system_egress: list[str], system_ingress: list[str], keys: dict[str, str], sources: dict[str, str]) -> Part | None:
    purpose = imp.key("data_uses", decl.get("data_use"), f"{where}.data_use") if decl.get("data_use") else None
    if purpose is None:
        imp.note(where, "a declaration without a known data use is left out")
        return None
    categories = list(dict.fromkeys(c for i, raw in enumerate(decl.get("data_categories") or [])
                                    if (c := imp.key("data_categories", raw, f"{where}.data_categories[{i}]"))))
    if not categories:
        imp.note(where, "a declaration without a known data category is left out")
        return None
    subjects = list(dict.fromkeys(s for i, raw in enumerate(decl.get("data_subjects") or [])
                                  if (s := imp.key("data_subjects", raw, f"{where}.data_subjects[{i}]"))))
    basis = LEGAL_BASIS_FROM_FIDES.get(str(decl.get("legal_basis_for_processing") or "").strip().lower()) \
        or imp.use_basis.get(str(decl["data_use"]))
    if basis is None:
        basis = "contract" if purpose.startswith("essential") else "consent"
        imp.note(f"{where}.legal_basis_for_processing", f"no legal basis given: assumed {basis} (essential uses: contract, "
                                                        "others: consent); review")
    egress = [keys[k] for k in _flows(decl["egress"]) if k in keys] if decl.get("egress") is not None else system_egress
    ingress = [sources[k] for k in _flows(decl["ingress"]) if k in sources] if decl.get("ingress") is not None else system_ingress
    if kind == "recipient":
        recipients, found_sources = own, ingress
    else:
        recipients = egress
        found_sources = ([sources[str(system["fides_key"])]] if kind == "source" else []) + ingress
    if dm.get("recipients") == []:  # this registry's export: an activity with no recipient
        recipients = []
    if dm.get("sources") == []:  # ... or with no source
        found_sources = []
    name = decl.get("name") or f"{system.get('name') or system.get('fides_key')}: {decl['data_use']}"
    return Part(key=dm.get("activity"), name=str(name), purpose=purpose, categories=categories, subjects=subjects, legal_basis=basis,
                 retention=_first_set(dm.get("retention"), decl.get("retention_period")),
                 security=_first_set(dm.get("security_measures"), system.get("data_security_practices")),
                 recipients=recipients, sources=found_sources,
                 index=dm["index"] if isinstance(dm.get("index"), int) else None,
                 order={k: [str(v) for v in dm[k]] for k in ("purposes", "recipients", "sources") if isinstance(dm.get(k), list)})


def _first_set(*values: Any) -> Any:
    """The first value that is there: an empty string is a value (issue 21), None is not."""
    return next((v for v in values if v is not None), None)


def _ordered(found: list[str], order: list[str] | None) -> list[str]:
    """``found`` in the order this registry's export recorded, anything else after it."""
    if not order:
        return found
    return [v for v in order if v in found] + [v for v in found if v not in order]


def _activities(parts: list[Part]) -> list[dict[str, Any]]:
    """Declarations of one activity (same meta key; without one, same name, categories, subjects,
    basis and retention) merge: their data uses become its purposes, their systems its recipients."""
    groups: dict[tuple[Any, ...], list[Part]] = {}
    for p in parts:
        group = ("key", p.key) if p.key else ("same", p.name, tuple(p.categories), tuple(p.subjects), p.legal_basis, p.retention, p.security)
        groups.setdefault(group, []).append(p)
    taken = {p.key for p in parts if p.key}
    out = []
    # this registry's export recorded each activity's place: the manifest's order comes back
    ordered = sorted(groups.items(), key=lambda g: (g[1][0].index is None, g[1][0].index or 0))
    for (tag, *_), items in ordered:
        first = items[0]
        key = first.key if tag == "key" and first.key else slug(first.name, taken, "activity")
        out.append({"key": key, "name": first.name,
                    "purposes": _ordered(list(dict.fromkeys(p.purpose for p in items)), first.order.get("purposes")),
                    "legal_basis": first.legal_basis, "data_subjects": first.subjects, "data_categories": first.categories,
                    "recipients": _ordered(list(dict.fromkeys(r for p in items for r in p.recipients)), first.order.get("recipients")),
                    "sources": _ordered(list(dict.fromkeys(s for p in items for s in p.sources)), first.order.get("sources")),
                    **some(retention=first.retention, security_measures=first.security)})
    return out


def _recipient(imp: Importer, path: str, res: dict[str, Any], meta: dict[str, Any], keys: dict[str, str], home: str,
               uses: list[str]) -> dict[str, Any]:
    key = keys[str(res["fides_key"])]
    joint = bool(res.get("joint_controller") or res.get("joint_controller_info"))
    role = meta.get("role") or role_from_fides(_titles(res), joint)
    if role is None:
        role = "processor"
        imp.note(f"{path}.responsibility", "no responsibility given: assumed processor; review")
    countries: list[str] = []
    for i, code in enumerate(res.get("third_country_transfers") or []):
        two = alpha2(str(code))
        if two is None:
            imp.note(f"{path}.third_country_transfers[{i}]", f"{code!r} is no ISO 3166 country")
        elif countries:
            imp.note(f"{path}.third_country_transfers[{i}]", f"a recipient has one country: {countries[0]} is kept, {two} is not")
        else:
            countries.append(two)
    country = meta.get("country") or (countries[0] if countries else None)
    if country is None:
        country = home
        imp.note(f"{path}.third_country_transfers", f"no country given (fideslang 3.x has no field for it): assumed the controller's ({home})")
    if "transfer_mechanism" in meta:
        mechanism = meta["transfer_mechanism"]
    else:
        mechanism = None
        for i, value in enumerate(res.get("legal_basis_for_transfers") or []):
            found = MECHANISM_FROM_FIDES.get(str(value).strip().lower())
            if found and mechanism is None:
                mechanism = found
            else:
                imp.note(f"{path}.legal_basis_for_transfers[{i}]", REASONS["legal_basis_for_transfers"] if not found
                         else f"one mechanism per recipient: {mechanism} is kept")
    parent = meta.get("processor_of")
    if parent is None and role == "sub_processor" and not meta:
        parents = [keys[str(other["fides_key"])] for _, other in imp.resources["system"]
                   if str(other.get("fides_key")) in keys and str(res["fides_key"]) in _flows(other.get("egress"))]
        parent = parents[0] if parents else None
        if parent is None:
            imp.note(path, "a sub-processor no processor's egress names: processor_of left empty")
    return {"key": key, "name": str(res.get("name") or res["fides_key"]), "service": meta.get("service") or service_from_uses(uses),
            "role": role, "country": country, **some(transfer_mechanism=mechanism, processor_of=parent,
                                                        contract=_first_set(meta.get("contract"), res.get("dpa_location")))}
