"""What each drift finding means and what to do about it, in plain words, with the manifest
snippet that would declare the observed flow (for the pages; the CLI keeps its JSON rows)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from .drift import KINDS, DriftRow

__all__ = ["Guide", "GUIDES", "suggested_manifest"]


@dataclass(frozen=True)
class Guide:
    title: str
    meaning: str
    action: str


GUIDES: dict[str, Guide] = {
    "undeclared_recipient": Guide(
        "Recipient not declared",
        "Personal data went to a recipient the manifest does not name: the record of processing and the privacy notice "
        "do not mention it.",
        "Find out why the service sends data there. If it is intended, declare the recipient and an activity that "
        "covers the flow; if not, stop the flow at the source."),
    "undeclared_purpose": Guide(
        "Purpose not declared",
        "The recipient is declared, but no activity with it covers the purpose this data was sent for.",
        "Add the purpose to the activity with this recipient (or declare a new activity), or change the emitting "
        "service if the purpose is wrong."),
    "undeclared_category": Guide(
        "Data category not declared",
        "An activity with this recipient covers the purpose, but not this kind of personal data.",
        "Add the category to the activity's data categories, or stop sending that data."),
    "legal_basis_mismatch": Guide(
        "Legal basis differs",
        "The events state a legal basis other than the one declared for the activity.",
        "Check which basis applies (a consent-based flow must not run on another basis), then correct the "
        "activity or the emitting service."),
    "undeclared_source": Guide(
        "Source service not declared",
        "A service that the activity does not list sent this data.",
        "Add the service to the activity's sources if it is part of the activity, or stop the flow."),
    "transfer_without_safeguard": Guide(
        "Third-country transfer without a safeguard",
        "Data went to a country outside the EEA without an adequacy decision or another safeguard (GDPR Chapter V).",
        "Put standard contractual clauses, binding corporate rules or a documented derogation in place and declare "
        "the mechanism on the recipient; or keep the data in the EEA."),
    "declared_not_observed": Guide(
        "Declared but not observed",
        "The manifest declares this activity with this recipient, but no event confirms it in the period.",
        "Check whether the flow stopped or the service does not emit events; remove stale declarations."),
    "before_notice": Guide(
        "Data sent before the notice ran out",
        "Personal data went to a recipient (or to its new country, or new kinds of data went to it) before the manifest "
        "version that announced the change took effect or before its objection deadline passed. Customers had no chance "
        "to object (GDPR Art. 28(2)/(4)) and the published list did not name the flow yet (Art. 13(1)(e)).",
        "Stop the flow until the notice has run out, or tell the customers concerned and ask for their consent to the "
        "earlier start. Next time declare the change ahead (registry declare FILE --effective-from a date at least the "
        "notice period away) and check `registry subprocessors changes` before shipping the integration."),
}
assert set(GUIDES) == set(KINDS)


def suggested_manifest(row: DriftRow, legal_basis: str | None = None) -> str | None:
    """The YAML a manifest would need so that the finding's flow is declared (None where no
    snippet applies: a declared flow that was not observed). Every value from an event is written
    as a quoted string (JSON is YAML): a source like ``a, b]\n  x: y`` must not add keys to a
    snippet a person copies into the manifest."""
    q = {k: json.dumps(v or "") for k, v in {"recipient": row.recipient, "purpose": row.purpose, "category": row.category,
                                            "source": row.source, "activity": row.activity}.items()}
    if row.kind == "undeclared_recipient":
        return (f"recipients:\n  - {{key: {q['recipient']}, name: \"…\", service: \"…\", role: processor, country: \"…\"}}\n"
                f"activities:\n  - key: …\n    name: \"…\"\n    purposes: [{q['purpose']}]\n"
                f"    legal_basis: {legal_basis or '…'}\n    data_categories: [{q['category']}]\n    recipients: [{q['recipient']}]\n"
                f"    sources: [{q['source']}]")
    if row.kind == "undeclared_purpose":
        return (f"activities:\n  - key: …   # an activity with {q['recipient']}\n    purposes: [{q['purpose']}]\n"
                f"    data_categories: [{q['category']}]\n    recipients: [{q['recipient']}]")
    if row.kind == "undeclared_category":
        return f"activities:\n  - key: {q['activity']}\n    data_categories: [ …, {q['category']}]"
    if row.kind == "legal_basis_mismatch":
        return f"activities:\n  - key: {q['activity']}\n    legal_basis: …   # {json.dumps(row.detail)}"
    if row.kind == "undeclared_source":
        return f"activities:\n  - key: {q['activity']}\n    sources: [ …, {q['source']}]"
    if row.kind == "transfer_without_safeguard":
        return f"recipients:\n  - key: {q['recipient']}\n    transfer_mechanism: scc   # or bcr / derogation, as signed"
    return None
