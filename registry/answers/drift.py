"""Drift: declarations checked against observed evidence (contract §5).

Each observed flow (source, recipient, category, purpose, legal basis) gets at most one of, in
order: undeclared_recipient → undeclared_purpose → undeclared_category → legal_basis_mismatch →
undeclared_source. Independently: transfer_without_safeguard per (recipient, country) and
declared_not_observed per (activity, recipient), and before_notice per change notice (events to
a recipient before the notice that announced it, or its new country or categories, ran out: §8).

An activity counts "with" a recipient when it lists the recipient or a processor the recipient
works for (a sub-processor acts under its processor's declaration)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection, Engine


from registry.model.declarations import in_force_at
from registry.model.manifest import Activity, Manifest
from registry.model.taxonomy import covers
from registry.model.times import format_time
from registry.model.transfers import safeguard_problem

from .strict import check_window
from .flows import Flow, Observation, cut, observations, per_category
from .notices import LateFlow, late_flows

__all__ = ["DriftRow", "drift", "drift_of", "classify_flow", "flow_findings", "notice_rows", "KINDS"]


KINDS = ("undeclared_recipient", "undeclared_purpose", "undeclared_category", "legal_basis_mismatch",
         "undeclared_source", "transfer_without_safeguard", "declared_not_observed", "before_notice")


class DriftRow(BaseModel):
    kind: str
    source: str | None
    recipient: str
    category: str | None
    purpose: str | None
    activity: str | None
    # the flow's legal basis, so a page marks exactly the flow a finding is about (contract §5);
    # kept out of the contract's JSON shape
    legal_basis: str | None = Field(default=None, exclude=True)
    detail: str
    first_seen: str | None
    last_seen: str | None
    events: int


def drift(engine: Engine, since: datetime | None = None, until: datetime | None = None,
          as_of: datetime | None = None) -> list[DriftRow]:
    """``as_of``: the events before it against the manifest in force then."""
    check_window(since, until, as_of)
    with engine.connect() as conn:
        found = observations(conn, since, cut(until, as_of))
        manifest = in_force_at(conn, as_of)
        late = notice_rows(conn, since, until, as_of)
    return drift_of(manifest, found) + late


def notice_rows(conn: Connection, since: datetime | None = None, until: datetime | None = None,
                as_of: datetime | None = None) -> list[DriftRow]:
    """The ``before_notice`` rows: one per change notice with events before it ran out."""
    return [_late_row(f) for f in late_flows(conn, since, until, as_of)]


def _late_row(f: LateFlow) -> DriftRow:
    n = f.notice
    what = "added" if n.change == "added" else "new " + " and ".join(k for k in ("country", "categories") if k in n.fields)
    return DriftRow(kind="before_notice", source=None, recipient=n.recipient, category=None, purpose=None, activity=None,
                    detail=f"{f.events} events before the notice of manifest version {n.version} ({what}) ran out: announced "
                           f"{format_time(n.announced_at)}, in force {format_time(n.effective_from)}, objection deadline "
                           f"{format_time(n.objection_deadline)}",
                    first_seen=format_time(f.first_seen), last_seen=format_time(f.last_seen), events=f.events)


def drift_of(manifest: Manifest | None, found: list[Observation]) -> list[DriftRow]:
    """Pure: the drift rows of the observations against ``manifest``, sorted by kind then flow.
    A flow row counts the events carrying its category; a safeguard row counts each event once."""
    rows: list[DriftRow] = []
    grouped: dict[tuple[str, str, str, str, str], list[Flow]] = {}
    for f in per_category(found):
        grouped.setdefault((f.source, f.recipient, f.category, f.purpose, f.legal_basis), []).append(f)
    for (source, recipient, category, purpose, basis), items in grouped.items():
        problem = classify_flow(manifest, source, recipient, category, purpose, basis)
        if problem:
            kind, activity, detail = problem
            rows.append(_row(kind, items, source=source, recipient=recipient, category=category, purpose=purpose,
                             legal_basis=basis, activity=activity, detail=detail))
    rows += _safeguards(manifest, found)
    if manifest is not None:
        rows += _not_observed(manifest, found)
    order = {k: i for i, k in enumerate(KINDS)}
    return sorted(rows, key=lambda r: (order[r.kind], r.recipient, r.source or "", r.category or "", r.purpose or "", r.activity or ""))


def flow_findings(rows: list[DriftRow]) -> dict[tuple[str, str, str, str, str], DriftRow]:
    """The flow findings by their whole flow key (source, recipient, category, purpose, legal
    basis): a consent flow beside a contract flow of the same category is another flow."""
    return {(r.source, r.recipient, r.category, r.purpose, r.legal_basis): r for r in rows
            if r.source and r.category and r.purpose and r.legal_basis}


def classify_flow(m: Manifest | None, source: str, recipient: str, category: str, purpose: str,
              basis: str) -> tuple[str, str | None, str] | None:
    """(kind, activity keys, detail) of the first check one flow fails, or None if declared."""
    if m is None or m.recipient(recipient) is None:
        return "undeclared_recipient", None, f"{recipient} is not in the manifest"
    chain = set(m.processor_chain(recipient))
    with_recipient = [a for a in m.activities if chain & set(a.recipients)]
    by_purpose = [a for a in with_recipient if any(covers(p, purpose) for p in a.purposes)]
    if not by_purpose:
        return "undeclared_purpose", None, f"no activity with {recipient} covers purpose {purpose}"
    by_category = [a for a in by_purpose if any(covers(c, category) for c in a.data_categories)]
    if not by_category:
        return "undeclared_category", _keys(by_purpose), f"no activity with {recipient} for {purpose} covers {category}"
    by_basis = [a for a in by_category if a.legal_basis == basis]
    if not by_basis:
        declared = ", ".join(sorted({a.legal_basis for a in by_category}))
        return "legal_basis_mismatch", _keys(by_category), f"observed {basis}, declared {declared}"
    if all(a.sources for a in by_basis) and not any(source in a.sources for a in by_basis):
        return "undeclared_source", _keys(by_basis), f"{source} is not among the sources of {_keys(by_basis)}"
    return None


def _keys(activities: list[Activity]) -> str:
    return ",".join(sorted(a.key for a in activities))


def _row(kind: str, items: list[Flow] | list[Observation], **fields: str | None) -> DriftRow:
    return DriftRow(kind=kind, first_seen=format_time(min(f.first_seen for f in items)),
                    last_seen=format_time(max(f.last_seen for f in items)), events=sum(f.events for f in items),
                    **fields)  # type: ignore[arg-type]


def _safeguards(m: Manifest | None, found: list[Observation]) -> list[DriftRow]:
    by_place: dict[tuple[str, str], tuple[str, list[Observation]]] = {}
    for f in found:
        declared = m.recipient(f.recipient) if m else None
        country = f.country or (declared.country if declared else "")
        mechanism = f.mechanism or (declared.transfer_mechanism if declared else None)
        problem = safeguard_problem(country, mechanism)
        if problem:
            by_place.setdefault((f.recipient, country), (problem, []))[1].append(f)
    return [_row("transfer_without_safeguard", items, source=None, recipient=recipient, category=None, purpose=None,
                 activity=None, detail=problem) for (recipient, _), (problem, items) in by_place.items()]


def _not_observed(m: Manifest, found: list[Observation]) -> list[DriftRow]:
    rows = []
    for a in m.activities:
        for key in a.recipients:
            if not any(o.recipient == key and any(covers(p, o.purpose) for p in a.purposes)
                       and any(covers(c, k) for c in a.data_categories for k in o.categories) for o in found):
                rows.append(DriftRow(kind="declared_not_observed", source=None, recipient=key, category=None, purpose=None,
                                     activity=a.key, detail=f"no event confirms {a.key} → {key}", first_seen=None,
                                     last_seen=None, events=0))
    return rows
