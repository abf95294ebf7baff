"""The Article 30 record of processing activities, built once from the declarations and the
observed evidence, then written as JSON, Markdown, CSV, XLSX or HTML.

Status of an activity: ``confirmed`` when every declared recipient received data the activity
covers (purpose and category) in the period; else ``declared_not_observed``."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel
from sqlalchemy.engine import Engine

from registry.answers.drift import DriftRow, drift_of, notice_rows
from registry.answers.flows import Observation, cut, observations
from registry.answers.graph import build_graph, subprocessors
from registry.exceptions import InputError
from registry.model.declarations import in_force, no_manifest_message
from registry.model.history import HistoryEntry, history
from registry.model.manifest import Activity, Manifest
from registry.model.taxonomy import Taxonomy, covers
from registry.model.times import format_time
from registry.model.transfers import EEA

from . import csvcell

__all__ = ["Ropa", "build_ropa", "to_json", "to_markdown", "to_csv", "ICO_COLUMNS", "table_rows", "Labels", "describe_changes",
           "HISTORY_COLUMNS", "history_rows", "no_manifest_message"]

Role = Literal["controller", "processor"]
PROCESSOR_ROLES = ("processor", "sub_processor")


class RopaRecipient(BaseModel):
    key: str
    name: str
    service: str
    role: str
    country: str


class RopaTransfer(BaseModel):
    recipient: str
    country: str
    mechanism: str | None


class Evidence(BaseModel):
    events: int
    first_seen: str | None
    last_seen: str | None
    recipients_observed: list[str]


class RopaActivity(BaseModel):
    key: str
    name: str
    purposes: list[str]
    legal_basis: str
    data_subjects: list[str]
    data_categories: list[str]
    recipients: list[RopaRecipient]
    transfers: list[RopaTransfer]
    retention: str | None
    security_measures: str | None
    evidence: Evidence
    status: str


class Ropa(BaseModel):
    controller: dict[str, str | None]
    generated_at: str
    activities: list[RopaActivity]
    undeclared: list[DriftRow]
    as_of: str | None = None  # the record as it stood then (`--as-of`), else null
    history: list[HistoryEntry] = []  # the manifest versions in force by then, each with what it changed


def build_ropa(engine: Engine, role: Role = "controller", as_of: datetime | None = None) -> tuple[Ropa, Manifest]:
    """The record now, or ``as_of`` a past time: the manifest in force then, the events before it,
    and the history of the versions in force by then."""
    with engine.connect() as conn:
        manifest = in_force(conn, as_of)
        if manifest is None:
            raise InputError(no_manifest_message(as_of))
        found = observations(conn, until=cut(None, as_of))
        late = notice_rows(conn, as_of=as_of)
    record = ropa_of(manifest, found, role)
    return record.model_copy(update={"as_of": format_time(as_of) if as_of else None, "history": history(engine, as_of),
                                     "undeclared": record.undeclared + late}), manifest


def ropa_of(manifest: Manifest, flows: list[Observation], role: Role = "controller") -> Ropa:
    """Pure: the record for ``manifest`` checked against ``flows``. As ``processor`` (Art. 30(2)),
    only the processing that processors and sub-processors carry out on the controller's behalf."""
    g = build_graph(manifest)
    by_key = manifest.recipient_map()
    activities = []
    for a in manifest.activities:
        keys = list(a.recipients)
        for key in a.recipients:
            keys += [sub for sub, _ in subprocessors(g, key)]
        named = [by_key[k] for k in dict.fromkeys(keys)]
        if role == "processor":
            named = [r for r in named if r.role in PROCESSOR_ROLES]
            if not named:
                continue
        covered = [f for f in flows if f.recipient in keys and _covers(a, f)]
        transfers: dict[tuple[str, str], str | None] = {(r.key, r.country): r.transfer_mechanism for r in named if r.country not in EEA}
        for f in covered:
            if f.country and f.country not in EEA:
                transfers.setdefault((f.recipient, f.country), f.mechanism or by_key[f.recipient].transfer_mechanism)
        observed = sorted({f.recipient for f in covered})
        activities.append(RopaActivity(
            key=a.key, name=a.name, purposes=a.purposes, legal_basis=a.legal_basis, data_subjects=a.data_subjects,
            data_categories=a.data_categories,
            recipients=[RopaRecipient(key=r.key, name=r.name, service=r.service, role=r.role, country=r.country) for r in named],
            transfers=[RopaTransfer(recipient=k, country=c, mechanism=m) for (k, c), m in sorted(transfers.items())],
            retention=a.retention, security_measures=a.security_measures,
            evidence=Evidence(events=sum(f.events for f in covered),
                              first_seen=format_time(min(f.first_seen for f in covered)) if covered else None,
                              last_seen=format_time(max(f.last_seen for f in covered)) if covered else None,
                              recipients_observed=observed),
            status="confirmed" if set(a.recipients) <= set(observed) else "declared_not_observed",
        ))
    undeclared = [r for r in drift_of(manifest, flows) if r.kind != "declared_not_observed"]
    return Ropa(controller=manifest.controller.model_dump(), generated_at=format_time(datetime.now(timezone.utc)),
                activities=activities, undeclared=undeclared)


def _covers(a: Activity, o: Observation) -> bool:
    """The events serve a purpose of ``a`` and carry at least one of its categories: evidence for
    the activity, each event counted once (contract §1)."""
    return any(covers(p, o.purpose) for p in a.purposes) and any(covers(c, k) for c in a.data_categories for k in o.categories)


class Labels:
    """Human names for taxonomy keys, as auditors read them: ``Email (user.contact.email)``."""

    def __init__(self, taxonomy: Taxonomy) -> None:
        self.taxonomy = taxonomy

    def categories(self, keys: list[str]) -> str:
        return "; ".join(self.taxonomy.name("data_categories", k) for k in keys)

    def purposes(self, keys: list[str]) -> str:
        return "; ".join(self.taxonomy.name("data_uses", k) for k in keys)

    def subjects(self, keys: list[str]) -> str:
        return "; ".join(self.taxonomy.name("data_subjects", k) for k in keys)


MECHANISMS = {"adequacy": "Adequacy decision (EU-US Data Privacy Framework for the US)", "scc": "Standard contractual clauses",
              "bcr": "Binding corporate rules", "derogation": "Art. 49 derogation", "none": "None", None: "None stated"}
LEGAL_BASES = {"consent": "Art. 6(1)(a) consent", "contract": "Art. 6(1)(b) contract", "legal_obligation": "Art. 6(1)(c) legal obligation",
               "vital_interests": "Art. 6(1)(d) vital interests", "public_task": "Art. 6(1)(e) public task",
               "legitimate_interests": "Art. 6(1)(f) legitimate interests"}
SERVICES = {"hosting": "Hosting and server co-location", "billing": "Billing and payment processing", "analytics": "Web analytics",
            "fraud": "Fraud detection and prevention", "social_widget": "Social media features", "newsletter": "Newsletter distribution",
            "session_recording": "Session recording and remote access", "communications": "Communications",
            "security": "Cyber-security", "marketing": "Marketing and advertising", "content": "Content providers",
            "advisors": "Legal and financial advisors", "group_company": "Our group companies", "authority": "Authorities",
            "other": "Other recipients"}

# UK ICO controller template, columns 1-12 in its order, then the evidence this registry adds.
ICO_COLUMNS = [
    "Business function", "Purpose of processing", "Name and contact details of joint controller (if applicable)",
    "Categories of individuals", "Categories of personal data", "Categories of recipients", "Link to contract with processor",
    "Names of third countries or international organisations that personal data are transferred to (if applicable)",
    "Safeguards for exceptional transfers of personal data to third countries or international organisations (if applicable)",
    "Retention schedule (if possible)", "General description of technical and organisational security measures (if possible)",
    "Article 6 lawful basis for processing personal data",
    "Named recipients (incl. sub-processors)", "Events observed", "First seen", "Last seen", "Recipients observed", "Status",
]


def table_rows(ropa: Ropa, manifest: Manifest) -> list[list[object]]:
    """One row per activity, in ICO_COLUMNS order; the event count stays a number (a spreadsheet
    sums it)."""
    labels = Labels(manifest.taxonomy_view())
    by_key = manifest.recipient_map()
    rows: list[list[object]] = []
    for a in ropa.activities:
        joint = [f"{r.name} ({by_key[r.key].contract or 'no contract on file'})" for r in a.recipients if r.role == "joint_controller"]
        contracts = [f"{r.name}: {by_key[r.key].contract}" for r in a.recipients if by_key[r.key].contract]
        rows.append([
            a.name, labels.purposes(a.purposes), "; ".join(joint), labels.subjects(a.data_subjects),
            labels.categories(a.data_categories), "; ".join(sorted({SERVICES[r.service] for r in a.recipients})),
            "; ".join(contracts), "; ".join(sorted({f"{t.country} ({t.recipient})" for t in a.transfers})),
            "; ".join(f"{t.recipient}: {MECHANISMS[t.mechanism]}" for t in a.transfers), a.retention or "",
            a.security_measures or "", LEGAL_BASES[a.legal_basis],
            "; ".join(f"{r.name} [{r.role.replace('_', ' ')}, {r.country}]" for r in a.recipients),
            a.evidence.events, a.evidence.first_seen or "", a.evidence.last_seen or "",
            "; ".join(a.evidence.recipients_observed), a.status.replace("_", " "),
        ])
    return rows


def describe_changes(entry: HistoryEntry) -> list[str]:
    """What a version changed, one line per kind of change, as an auditor reads it."""
    d = entry.changes
    if d.from_ is None:
        return [f"first version: {len(d.recipients.added)} recipients, {len(d.activities.added)} activities"]
    lines = [f"controller {field}: {_shown(old)} → {_shown(new)}" for field, (old, new) in d.controller.items()]
    for what, changes in (("recipients", d.recipients), ("activities", d.activities)):
        if changes.added:
            lines.append(f"{what} added: {', '.join(changes.added)}")
        if changes.removed:
            lines.append(f"{what} removed: {', '.join(changes.removed)}")
        for c in changes.changed:
            lines.append(f"{what[:-1] if what == 'recipients' else 'activity'} {c.key} changed: "
                         + "; ".join(f"{field} {_shown(old)} → {_shown(new)}" for field, (old, new) in c.fields.items()))
    return lines or ["no change"]


def _shown(value: object) -> str:
    if value is None:
        return "—"
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


HISTORY_COLUMNS = ["Version", "Declared at", "Effective from", "Compared with version", "Changes"]


def history_rows(ropa: Ropa) -> list[list[str]]:
    return [[str(h.version), h.declared_at, h.effective_from, "" if h.changes.from_ is None else str(h.changes.from_),
             "\n".join(describe_changes(h))] for h in ropa.history]


def to_json(ropa: Ropa) -> str:
    # the JSON keeps the contract's shape (§6); the history is `registry manifests` in JSON
    return ropa.model_dump_json(indent=2, exclude={"as_of", "history"})


def to_csv(ropa: Ropa, manifest: Manifest) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(ICO_COLUMNS)
    writer.writerows(csvcell.row(r) for r in table_rows(ropa, manifest))
    return buffer.getvalue()


def to_markdown(ropa: Ropa, manifest: Manifest) -> str:
    c = ropa.controller
    labels = Labels(manifest.taxonomy_view())
    lines = ["# Record of processing activities (GDPR Art. 30)", "", *([f"**As of:** {ropa.as_of}  "] if ropa.as_of else []),
             f"**Controller:** {c['name']}, {c.get('address') or ''} — contact: {c.get('contact') or '—'}  ",
             f"**Data protection officer:** {c.get('dpo') or '—'}  ", f"**Representative:** {c.get('representative') or '—'}  ",
             f"**Generated:** {ropa.generated_at} from declarations checked against observed events", ""]
    for a in ropa.activities:
        ev = a.evidence
        lines += [f"## {a.name} (`{a.key}`) — {a.status.replace('_', ' ')}", "",
                  f"- **Purposes:** {labels.purposes(a.purposes)}", f"- **Lawful basis:** {LEGAL_BASES[a.legal_basis]}",
                  f"- **Data subjects:** {labels.subjects(a.data_subjects)}",
                  f"- **Personal data:** {labels.categories(a.data_categories)}",
                  "- **Recipients:** " + "; ".join(f"{r.name} ({r.role.replace('_', ' ')}, {r.country})" for r in a.recipients),
                  "- **Third-country transfers:** " + ("; ".join(f"{t.recipient} → {t.country}: {MECHANISMS[t.mechanism]}"
                                                                   for t in a.transfers) or "none"),
                  f"- **Retention:** {a.retention or '—'}", f"- **Security measures:** {a.security_measures or '—'}",
                  f"- **Evidence:** {ev.events} events, {ev.first_seen or '—'} to {ev.last_seen or '—'}; "
                  f"recipients observed: {', '.join(ev.recipients_observed) or 'none'}", ""]
    lines += ["## Observed but not declared", ""]
    if ropa.undeclared:
        lines += ["| kind | source | recipient | category | purpose | events | detail |", "|---|---|---|---|---|---:|---|"]
        lines += [f"| {r.kind} | {r.source or ''} | {r.recipient} | {r.category or ''} | {r.purpose or ''} | {r.events} | {r.detail} |"
                  for r in ropa.undeclared]
    else:
        lines.append("Nothing: every observed flow is declared.")
    lines += ["", "## History of the declarations", "",
              "Each manifest version in the order it took effect, with what it changed against the version in force before it.", ""]
    for h in ropa.history:
        lines.append(f"- **Version {h.version}**, in force from {h.effective_from} (declared {h.declared_at}):")
        lines += [f"  - {line}" for line in describe_changes(h)]
    return "\n".join(lines) + "\n"
