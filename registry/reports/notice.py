"""The privacy notice's "who we share your data with" and "international transfers" sections
(GDPR Art. 13(1)(e)-(f), 14(1)(e)-(f)), grouped by recipient kind as the example controller's
policy groups them, from the same declarations as the record."""

from __future__ import annotations

from registry.model.manifest import Manifest
from registry.model.transfers import ADEQUATE, EEA

from .ropa import SERVICES, Labels

__all__ = ["to_notice"]

_SAFEGUARD = {
    "adequacy": "an adequacy decision of the European Commission (for the United States, the EU-US Data Privacy Framework)",
    "scc": "the European Commission's standard contractual clauses",
    "bcr": "binding corporate rules approved by a supervisory authority",
    "derogation": "a derogation of Art. 49 GDPR (for example, to establish or defend legal claims)",
}


def to_notice(manifest: Manifest) -> str:
    labels = Labels(manifest.taxonomy_view())
    by_key = manifest.recipient_map()
    chains = {k: set(manifest.processor_chain(k)) for k in by_key}  # a sub-processor serves its processor's activities
    uses: dict[str, tuple[set[str], set[str]]] = {}
    for a in manifest.activities:
        for key, chain in chains.items():
            if chain & set(a.recipients):
                purposes, categories = uses.setdefault(key, (set(), set()))
                purposes.update(a.purposes)
                categories.update(a.data_categories)
    c = manifest.controller
    lines = ["## Who we share your data with", "",
             f"{c.name} shares personal data only with the recipients below, each for the purposes stated."
             " Processors act on our instructions under a data processing agreement; independent controllers"
             " use the data under their own privacy policies.", ""]
    kinds: dict[str, list[str]] = {}
    for r in manifest.recipients:
        kinds.setdefault(r.service, []).append(r.key)
    for kind in SERVICES:
        if kind not in kinds:
            continue
        lines += [f"### {SERVICES[kind]}", ""]
        for key in sorted(kinds[kind], key=lambda k: by_key[k].name):
            r = by_key[key]
            purposes, categories = uses.get(key, (set(), set()))
            role = r.role.replace("_", " ") + (f" of {by_key[r.processor_of].name}" if r.processor_of else "")
            lines.append(f"- **{r.name}** ({role}, {r.country})" + (
                f": {labels.purposes(sorted(purposes))}; data: {labels.categories(sorted(categories))}." if purposes else "."))
        lines.append("")
    lines += ["We may also disclose personal data to courts, law enforcement and other authorities where the law requires"
              " it (for example under a subpoena, court order or search warrant). We keep a record of each such"
              " request and publish a yearly transparency report.", "", "## International transfers", ""]
    abroad = [r for r in manifest.recipients if r.country not in EEA]
    if not abroad:
        lines.append("We do not transfer personal data outside the European Economic Area.")
    for r in sorted(abroad, key=lambda r: (r.country, r.name)):
        if r.country in ADEQUATE:
            basis = "an adequacy decision of the European Commission"
        else:
            basis = _SAFEGUARD.get(r.transfer_mechanism or "", "**no safeguard is in place yet**")
        lines.append(f"- **{r.name}** ({r.country}): {basis}.")
    lines += ["", f"You can obtain a copy of the safeguards by writing to {c.contact or c.name}"
              + (f" or to our data protection officer ({c.dpo})" if c.dpo else "") + ".", ""]
    return "\n".join(lines)
