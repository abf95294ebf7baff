"""What each drift finding means and what to do about it, in plain words, with the manifest
snippet that would declare the observed flow (for the pages; the CLI keeps its JSON rows)."""

from __future__ import annotations

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
}
assert set(GUIDES) == set(KINDS)


def suggested_manifest(row: DriftRow, legal_basis: str | None = None) -> str | None:
    """The YAML a manifest would need so that the finding's flow is declared (None where no
    snippet applies: a declared flow that was not observed)."""
    if row.kind == "undeclared_recipient":
        return (f"recipients:\n  - {{key: {row.recipient}, name: \"…\", service: \"…\", role: processor, country: \"…\"}}\n"
                f"activities:\n  - key: …\n    name: \"…\"\n    purposes: [{row.purpose}]\n"
                f"    legal_basis: {legal_basis or '…'}\n    data_categories: [{row.category}]\n    recipients: [{row.recipient}]\n"
                f"    sources: [{row.source}]")
    if row.kind == "undeclared_purpose":
        return (f"activities:\n  - key: …   # an activity with {row.recipient}\n    purposes: [{row.purpose}]\n"
                f"    data_categories: [{row.category}]\n    recipients: [{row.recipient}]")
    if row.kind == "undeclared_category":
        return f"activities:\n  - key: {row.activity}\n    data_categories: [ …, {row.category}]"
    if row.kind == "legal_basis_mismatch":
        return f"activities:\n  - key: {row.activity}\n    legal_basis: …   # {row.detail}"
    if row.kind == "undeclared_source":
        return f"activities:\n  - key: {row.activity}\n    sources: [ …, {row.source}]"
    if row.kind == "transfer_without_safeguard":
        return f"recipients:\n  - key: {row.recipient}\n    transfer_mechanism: scc   # or bcr / derogation, as signed"
    return None
