"""The Fides ↔ manifest mapping tables (the README's mapping table says the same in words).

Fides resources exist in fideslang 1.x (``data_responsibility_title``, ``third_country_transfers``,
``data_qualifier``, ``joint_controller``, taxonomy keys like ``user.provided.identifiable.contact.email``)
and 3.x (``responsibility``, ``legal_basis_for_transfers``, ``legal_basis_for_processing``, the
flatter taxonomy this registry uses). Both read into one manifest."""

from __future__ import annotations

from typing import Literal

import pycountry

from registry.model.taxonomy import Kind, Taxonomy

__all__ = ["LEGAL_BASIS_FROM_FIDES", "LEGAL_BASIS_TO_FIDES", "MECHANISM_FROM_FIDES", "MECHANISM_TO_FIDES", "role_from_fides",
           "ROLE_TO_FIDES", "service_from_uses", "alpha2", "alpha3", "upgrade_key", "upgrade_prefix", "THIRD_PARTY_TYPES", "REASONS", "DEFAULT_REASON"]

# fideslang 3.x LegalBasisForProcessingEnum and 1.x DataUse.legal_basis (spellings differ)
LEGAL_BASIS_FROM_FIDES = {
    "consent": "consent", "contract": "contract", "legal obligation": "legal_obligation", "legal obligations": "legal_obligation",
    "vital interest": "vital_interests", "vital interests": "vital_interests", "public interest": "public_task",
    "public task": "public_task", "legitimate interest": "legitimate_interests", "legitimate interests": "legitimate_interests",
}
LEGAL_BASIS_TO_FIDES = {"consent": "Consent", "contract": "Contract", "legal_obligation": "Legal obligations",
                        "vital_interests": "Vital interests", "public_task": "Public interest",
                        "legitimate_interests": "Legitimate interests"}

# System.legal_basis_for_transfers (3.x: free strings; Fides' UI offers these)
MECHANISM_FROM_FIDES = {
    "adequacy decision": "adequacy", "adequacy": "adequacy", "data privacy framework": "adequacy",
    "sccs": "scc", "scc": "scc", "standard contractual clauses": "scc",
    "bcrs": "bcr", "bcr": "bcr", "binding corporate rules": "bcr",
    "derogation": "derogation", "art. 49 derogation": "derogation",
}
# derogation and none have no Fides value: they ride in meta
MECHANISM_TO_FIDES = {"adequacy": "Adequacy Decision", "scc": "SCCs", "bcr": "BCRs"}

Role = Literal["processor", "sub_processor", "independent_controller", "joint_controller", "public_authority", "group_company"]
ROLE_TO_FIDES = {"processor": "Processor", "sub_processor": "Sub-Processor", "independent_controller": "Controller",
                 "joint_controller": "Controller", "public_authority": "Controller", "group_company": "Controller"}

# system_type values that name a third party (compared lowercased, as substrings)
THIRD_PARTY_TYPES = ("third party", "third-party", "vendor", "service provider", "processor", "external")


def role_from_fides(titles: list[str], joint: bool) -> Role | None:
    """``responsibility`` (3.x, a list) or ``data_responsibility_title`` (1.x, one value)."""
    lowered = {t.strip().lower() for t in titles}
    if "sub-processor" in lowered or "sub_processor" in lowered:
        return "sub_processor"
    if "processor" in lowered:
        return "processor"
    if "controller" in lowered:
        return "joint_controller" if joint else "independent_controller"
    return "joint_controller" if joint else None


# first match wins: the most specific data-use prefixes first
_SERVICES = (("essential.service.payment_processing", "billing"), ("essential.fraud_detection", "fraud"),
             ("essential.service.security", "security"), ("essential.service.operations.support", "communications"),
             ("essential.service.notifications", "communications"), ("marketing.communications", "newsletter"),
             ("marketing", "marketing"), ("analytics", "analytics"), ("functional.service.improve", "analytics"),
             ("essential.legal_obligation", "advisors"), ("essential.service.operations", "hosting"),
             ("functional.storage", "hosting"), ("personalize.content", "content"))


def service_from_uses(uses: list[str]) -> str:
    """The recipient kind for a system without ``meta.dataflow_registry.service``: from the data
    uses it is declared for ("other" when none says more)."""
    for prefix, service in _SERVICES:
        if any(u == prefix or u.startswith(prefix + ".") for u in uses):
            return service
    return "other"


def alpha2(code: str) -> str | None:
    """ISO 3166 alpha-3 (Fides) or alpha-2 to alpha-2; None when it is no country."""
    code = code.strip().upper()
    found = pycountry.countries.get(alpha_3=code) if len(code) == 3 else pycountry.countries.get(alpha_2=code)
    return found.alpha_2 if found else None


def alpha3(code: str) -> str | None:
    found = pycountry.countries.get(alpha_2=code.upper())
    return found.alpha_3 if found else None


# fideslang 1.x keys → 3.x keys, by prefix (longest first); what remains unknown climbs to the
# nearest known ancestor and is reported
_UPGRADES: dict[Kind, tuple[tuple[str, str], ...]] = {
    "data_categories": (
        ("user.provided.identifiable.contact.", "user.contact."), ("user.provided.identifiable.contact", "user.contact"),
        ("user.derived.identifiable.device.", "user.device."), ("user.derived.identifiable.browsing_history", "user.behavior.browsing_history"),
        ("user.derived.identifiable.location", "user.location"), ("user.derived.identifiable.", "user."),
        ("user.derived.nonidentifiable.", "user."), ("user.provided.identifiable.credentials.", "user.authorization.credentials."),
        ("user.provided.identifiable.", "user."), ("user.provided.nonidentifiable.", "user."),
        ("user.provided.identifiable", "user"), ("user.derived.identifiable", "user"), ("user.provided.nonidentifiable", "user"),
        ("user.derived.nonidentifiable", "user"), ("user.provided", "user"),
        ("user.derived", "user"), ("account.", "user.account."), ("account", "user.account"),
    ),
    "data_uses": (
        ("provide.service.operations.support", "essential.service.operations.support"), ("provide.service", "essential.service"),
        ("provide", "essential"), ("improve.system", "functional.service.improve"), ("improve", "functional.service.improve"),
        ("advertising", "marketing.advertising"), ("personalize", "personalize"),
    ),
    "data_subjects": (),
}


def upgrade_prefix(kind: Kind, key: str) -> str:
    """A 1.x key renamed by the prefix table, whether or not the result is known yet (for
    taxonomy extensions, which add the key)."""
    for old, new in _UPGRADES[kind]:
        if key == old or key.startswith(old + ".") or (old.endswith(".") and key.startswith(old)):
            return new + key[len(old):]
    return key


def upgrade_key(kind: Kind, key: str, taxonomy: Taxonomy) -> tuple[str | None, str | None]:
    """(the key this registry knows for a Fides key, a reason to report when meaning was lost).
    A 1.x key with a known 3.x equivalent maps silently; an unknown one widens to its nearest
    known ancestor, reported."""
    if taxonomy.has(kind, key):
        return key, None
    candidate = upgrade_prefix(kind, key)
    if taxonomy.has(kind, candidate):
        return candidate, None
    parts = key.split(".")
    for end in range(len(parts) - 1, 0, -1):
        ancestor = ".".join(parts[:end])
        for old, new in _UPGRADES[kind]:
            if ancestor.startswith(old) and taxonomy.has(kind, up := new + ancestor[len(old):]):
                return up, f"{key} is not in the taxonomy: widened to {up}"
        if taxonomy.has(kind, ancestor):
            return ancestor, f"{key} is not in the taxonomy: widened to {ancestor}"
    return None, f"{key} is not in the taxonomy and has no known ancestor: left out"


# why a Fides field has no place in the manifest (the rest get DEFAULT_REASON)
DEFAULT_REASON = "no manifest field holds it"
REASONS = {
    "data_qualifier": "data qualifiers were removed in fideslang 2.0 and the manifest has none",
    "dataset_references": "datasets describe storage; the manifest records recipients and flows",
    "joint_controller": "the joint controller's contact details have no manifest field (the role is kept)",
    "joint_controller_info": "the joint controller's details have no manifest field (the role is kept)",
    "security_policy": "the manifest has no security-policy link",
    "third_country_transfers": "a recipient has one country: the first is kept",
    "legal_basis_for_transfers": "no registry transfer mechanism matches",
    "fidesctl_meta": "Fides' own bookkeeping",
    "data_security_practices": "security measures are declared per activity in the manifest",
    "uses_profiling": "the manifest records no profiling flag", "legal_basis_for_profiling": "the manifest records no profiling flag",
    "cookies": "the manifest records no cookies", "uses_cookies": "the manifest records no cookies",
    "privacy_policy": "the manifest has no privacy-policy link", "administrating_department": "the manifest has no departments",
    "features": "the manifest has no features", "impact_assessment_location": "the manifest has no DPIA link",
    "requires_data_protection_assessments": "the manifest has no DPIA flag",
    "processes_special_category_data": "the manifest records no Art. 9 condition",
    "special_category_legal_basis": "the manifest records no Art. 9 condition",
    "special_category": "the manifest records no Art. 9 condition",
    "legitimate_interest_impact_assessment": "the manifest has no LIA link",
    "recipients": "1.x data-use recipients are free text; recipients come from systems",
}
