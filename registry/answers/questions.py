"""The questions of auditors and legal counsel (contract §6): who received a category, what a
recipient received, everything about one data subject, the sub-processor chains."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any, NamedTuple

import orjson
import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.engine import Engine

from registry.exceptions import InputError
from registry.ledger.disclosures import current_disclosures, signed_snapshots
from registry.model.declarations import in_force_at
from registry.model.events import TRANSFER
from registry.model.retention import purged_before
from registry.model.tables import EventRow, FlowDay, SubjectFlow, monday
from registry.model.subjects import is_subject_ref
from registry.model.times import format_time

from .flows import Flow, Observation, cut, observations, per_category
from .strict import check_category, check_recipient, check_window
from .graph import build_graph, chain, erasure_fanout, recipient_node, subprocessors

__all__ = ["RecipientRow", "recipients_of", "RecipientDetail", "recipient_detail", "SubjectAnswer", "subject",
           "SubprocessorRow", "subprocessor_chains"]


class RecipientInfo(BaseModel):
    """What the manifest says of a recipient (``declared`` False: only observed)."""

    recipient: str
    name: str
    service: str | None
    role: str | None
    country: str | None
    declared: bool


class RecipientRow(RecipientInfo):
    via: str | None
    categories: list[str]
    first_seen: str
    last_seen: str
    events: int


def _describe(g, key: str) -> dict:  # type: ignore[no-untyped-def]
    node = g.nodes[recipient_node(key)] if recipient_node(key) in g else {}
    return {"recipient": key, "name": node.get("name") or key, "service": node.get("service"), "role": node.get("role"),
            "country": node.get("country"), "declared": bool(node.get("declared"))}


def recipients_of(engine: Engine, category: str, since: datetime | None = None, until: datetime | None = None,
                  include_subprocessors: bool = False, as_of: datetime | None = None) -> list[RecipientRow]:
    """Recipients of ``category`` or anything under it in the window; sub-processors inherit
    what their processor received (``via`` names the direct parent). ``as_of``: the manifest in
    force then and the events before it."""
    check_window(since, until, as_of)
    with engine.connect() as conn:
        check_category(conn, category)
        found = observations(conn, since, cut(until, as_of), category=category)
        manifest = in_force_at(conn, as_of)
    g = build_graph(manifest, found)
    by_recipient: dict[str, list[Observation]] = {}
    for o in found:
        by_recipient.setdefault(o.recipient, []).append(o)
    rows = [_row(g, key, None, items, category) for key, items in by_recipient.items()]
    if include_subprocessors:
        for key, items in by_recipient.items():
            rows += [_row(g, sub, parent, items, category) for sub, parent in subprocessors(g, key)]
    return sorted(rows, key=lambda r: (r.recipient, r.via or ""))


def _row(g, key: str, via: str | None, found: list[Observation], category: str) -> RecipientRow:  # type: ignore[no-untyped-def]
    """Each event once, however many of its categories lie under ``category`` (contract §1)."""
    return RecipientRow(**_describe(g, key), via=via, categories=sorted({c for o in found for c in o.covered(category)}),
                        first_seen=format_time(min(o.first_seen for o in found)),
                        last_seen=format_time(max(o.last_seen for o in found)), events=sum(o.events for o in found))


class FlowView(BaseModel):
    source: str
    category: str
    purpose: str
    legal_basis: str
    first_seen: str
    last_seen: str
    events: int
    records: int


class RecipientDetail(RecipientInfo):
    flows: list[FlowView]


def recipient_detail(engine: Engine, key: str, since: datetime | None = None, until: datetime | None = None,
                     as_of: datetime | None = None) -> RecipientDetail:
    """What ``key`` received, per (source, category, purpose, legal basis)."""
    check_window(since, until, as_of)
    with engine.connect() as conn:
        check_recipient(conn, key)
        found = observations(conn, since, cut(until, as_of), recipient=key)
        manifest = in_force_at(conn, as_of)
    flows = per_category(found)
    merged: dict[tuple[str, str, str, str], Flow] = {}
    for f in flows:
        k = (f.source, f.category, f.purpose, f.legal_basis)
        merged[k] = merged[k].merge(f) if k in merged else f
    views = [FlowView(source=f.source, category=f.category, purpose=f.purpose, legal_basis=f.legal_basis,
                      first_seen=format_time(f.first_seen), last_seen=format_time(f.last_seen), events=f.events, records=f.records)
             for _, f in sorted(merged.items())]
    return RecipientDetail(**_describe(build_graph(manifest, found), key), flows=views)


class SubjectTransfer(BaseModel):
    recipient: str
    source: str
    categories: list[str]
    purposes: list[str]
    first_seen: str
    last_seen: str
    events: int


class SubjectDisclosure(BaseModel):
    request_id: str
    authority: str
    instrument: str
    disclosed_at: str | None
    outcome: str
    notice: str


class SubjectAnswer(BaseModel):
    subject_ref: str
    transfers: list[SubjectTransfer]
    disclosures: list[SubjectDisclosure]
    notify_on_erasure: list[str]
    # contract §6: the oldest time still indexed: where subject-ref retention stopped (a week's
    # Monday), else the first transfer recorded; null for a store without transfers
    covered_since: str | None = None


def subject(engine: Engine, ref: str, as_of: datetime | None = None) -> SubjectAnswer:
    """Art. 15 (every recipient and disclosure) and Art. 19 (who to tell of an erasure). With
    ``as_of``: the events before it (whole weeks from the index, the week it falls in cut exactly)
    and the disclosure snapshots before it, against the manifest in force then."""
    if not is_subject_ref(ref):
        raise InputError("a subject ref is 64 lowercase hex characters (see `registry subject-ref`)", "REF")
    with engine.connect() as conn:
        covered = purged_before(conn, "subject_refs")
        if as_of is not None and covered is not None and as_of <= covered:
            # every index row before as_of is gone: an empty list would read as "no transfers"
            raise InputError(f"--as-of {format_time(as_of)} is inside the period whose subject refs retention removed "
                             f"(before {format_time(covered)}): this subject's transfers then are no longer known", "--as-of")
        # the index is keyed by week first (so a batch's inserts land together): one seek per week
        # of data. Two statements: SQLite answers a lone min() or max() from the index, both by a scan.
        first: date | None = conn.execute(sa.select(sa.func.min(FlowDay.c.day))).scalar()
        last: date | None = conn.execute(sa.select(sa.func.max(FlowDay.c.day))).scalar()
        if as_of is not None and last is not None:
            last = min(last, as_of.astimezone(timezone.utc).date())
        weeks = [] if first is None or last is None or last < first else \
            [monday(first) + timedelta(weeks=i) for i in range((monday(last) - monday(first)).days // 7 + 1)]
        subjects = SubjectFlow
        # the weeks are generated here, not user input: inlined as literals, one index seek each
        query = sa.text(f"SELECT week, recipient, source, purpose, categories, events, first_seen, last_seen FROM subject_flow "
                        f"WHERE week IN ({', '.join(repr(w.isoformat()) for w in weeks)}) AND subject_ref = :ref").columns(
            subjects.c.week, subjects.c.recipient, subjects.c.source, subjects.c.purpose, subjects.c.categories, subjects.c.events,
            subjects.c.first_seen, subjects.c.last_seen)
        rows: list[Any] = list(conn.execute(query, {"ref": ref})) if weeks else []
        if as_of is not None:
            rows = _cut_rows(conn, ref, rows, as_of)
        if covered is None and first is not None:
            d = FlowDay
            covered = conn.execute(sa.select(sa.func.min(d.c.first_seen)).where(d.c.day == first)).scalar()
        disclosures = _disclosures_of(conn, ref, as_of)
        manifest = in_force_at(conn, as_of)
    grouped: dict[tuple[str, str], list[Any]] = {}
    for row in rows:
        grouped.setdefault((row.recipient, row.source), []).append(row)
    transfers = [SubjectTransfer(recipient=recipient, source=source,
                                 categories=sorted({c for r in items for c in r.categories.split(",")}),
                                 purposes=sorted({r.purpose for r in items}), first_seen=format_time(min(r.first_seen for r in items)),
                                 last_seen=format_time(max(r.last_seen for r in items)), events=sum(r.events for r in items))
                 for (recipient, source), items in sorted(grouped.items())]
    g = build_graph(manifest)
    return SubjectAnswer(subject_ref=ref, transfers=transfers, disclosures=disclosures,
                         notify_on_erasure=erasure_fanout(g, {t.recipient for t in transfers}),
                         covered_since=None if covered is None else format_time(covered))


class _Part(NamedTuple):
    """A recounted part of an index row: the same fields the answer reads."""

    recipient: str
    source: str
    purpose: str
    categories: str
    events: int
    first_seen: datetime
    last_seen: datetime


def _cut_rows(conn: sa.Connection, ref: str, rows: list[Any], as_of: datetime) -> list[Any]:
    """The index rows as they stood before ``as_of``: a row entirely before it stays, one entirely
    after it goes, and a key with a row straddling it (only in the week ``as_of`` falls in) is
    recounted from its events of that week before ``as_of`` — all its rows of that week, whatever
    their shard, so nothing counts twice."""
    week = monday(as_of.astimezone(timezone.utc).date())
    keyed = lambda row: (row.recipient, row.source, row.purpose, row.categories)  # noqa: E731
    recount = {keyed(row) for row in rows if row.first_seen < as_of <= row.last_seen}
    kept: list[Any] = []
    straddling: dict[tuple[str, str, str, str], datetime] = {}
    for row in rows:
        if keyed(row) in recount and _week_of(row.week) == week:
            if row.first_seen < as_of:
                straddling[keyed(row)] = min(row.first_seen, straddling.get(keyed(row), row.first_seen))
        elif row.last_seen < as_of:
            kept.append(row)
    purged = purged_before(conn, "events")
    if straddling and purged is not None and min(straddling.values()) < purged:
        raise InputError(f"--as-of {format_time(as_of)} is inside the period whose events retention removed (before "
                         f"{format_time(purged)}): the subject index holds weeks there; use a Monday 00:00 UTC", "--as-of")
    e = EventRow
    for recipient in sorted({k[0] for k in straddling}):
        low = min(t for k, t in straddling.items() if k[0] == recipient)
        parts: dict[tuple[str, str, str, str], _Part] = {}
        query = sa.select(e.c.source, e.c.time, e.c.body).where(
            e.c.recipient == recipient, e.c.time >= low, e.c.time < as_of, e.c.type == TRANSFER, e.c.body.like(f"%{ref}%"))
        for source, moment, body in conn.execute(query):
            envelope = orjson.loads(body)
            d = envelope["data"] if "data" in envelope else envelope
            if ref not in d.get("subject_refs", ()):
                continue
            key = (recipient, source, d["purpose"], ",".join(sorted(set(d["data_categories"]))))
            if key not in straddling:
                continue  # an event of a row kept whole
            known = parts.get(key)
            parts[key] = _Part(*key, 1, moment, moment) if known is None else known._replace(
                events=known.events + 1, first_seen=min(known.first_seen, moment), last_seen=max(known.last_seen, moment))
        kept += parts.values()
    return kept


def _week_of(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _disclosures_of(conn: sa.Connection, ref: str, as_of: datetime | None = None) -> list[SubjectDisclosure]:
    """Current state (as of ``as_of``: the newest snapshot taken before it) of every disclosure
    request any version of which (before ``as_of``) names the subject."""
    ids = {request_id for request_id, _, entry in signed_snapshots(conn, as_of, containing=ref)
           if ref in entry["data"].get("subject_refs", ())}
    if not ids:
        return []
    return [SubjectDisclosure(request_id=row.request_id, authority=row.authority, instrument=row.instrument,
                              disclosed_at=row.disclosed_at, outcome=row.outcome, notice=row.notice)
            for row, _ in current_disclosures(conn, before=as_of) if row.request_id in ids]


class SubprocessorRow(BaseModel):
    recipient: str
    processor_of: str
    chain: list[str]
    country: str


def subprocessor_chains(engine: Engine, as_of: datetime | None = None) -> list[SubprocessorRow]:
    manifest = in_force_at(engine, as_of)
    if manifest is None:
        return []
    g = build_graph(manifest)
    return [SubprocessorRow(recipient=r.key, processor_of=r.processor_of, chain=chain(g, r.key), country=r.country)
            for r in sorted(manifest.recipients, key=lambda r: r.key) if r.processor_of]
