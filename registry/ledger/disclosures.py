"""Disclosures to authorities, as the legal team sees them: logging a snapshot from a file,
the current state of each request, open and overdue requests, the Art. 48 warning."""

from __future__ import annotations

import getpass
import re
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterator


import orjson
import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection, Engine

from registry.model.declarations import newest_declared
from registry.model.events import EventValidator
from registry.model.tables import LedgerEntry
from registry.model.times import format_time, parse_time
from registry.model.transfers import EEA

from .anchors import anchor_new_heads
from .chain import append_snapshots
from .deadlines import clock_error_warning, clock_state, deadline_warning, due_at, eu_authority_warning, is_open
from .validation import check_snapshot, load_snapshot

__all__ = ["LogResult", "log_disclosure", "parse_disclosure", "Disclosure", "current_disclosures", "signed_snapshots", "list_disclosures",
           "art48_warning", "overdue_warning", "Version", "request_history", "row_clock"]


_ART48 = ("court_order", "subpoena", "eu_production_order", "eu_preservation_order")
_AGREEMENT = re.compile(r"mlat|treaty|agreement|convention|mutual legal assistance", re.IGNORECASE)


class LogResult(BaseModel):
    request_id: str
    version: int
    hash: str


def parse_disclosure(text: str, validator: EventValidator) -> dict[str, Any]:
    """A snapshot from YAML or JSON text, every wrong field reported at once
    (:mod:`.validation`), then validated like a ``registry.disclosure.v1`` event's data."""
    data = {k: _as_text(v) for k, v in load_snapshot(text).items()}
    check_snapshot(data, validator)
    return data


def _as_text(value: Any) -> Any:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=timezone.utc)
        return format_time(moment)
    if isinstance(value, date):
        return value.isoformat()
    return value


def log_disclosure(engine: Engine, text: str, origin: str | None = None) -> LogResult:
    """Validate and append one snapshot (time = now). ``origin`` says who logged it (default
    ``file:<login name>``). Nothing is stored when it is invalid."""
    manifest = newest_declared(engine)
    data = parse_disclosure(text, EventValidator(manifest.taxonomy_view() if manifest else None))
    origin = origin or f"file:{_user()}"
    with engine.begin() as conn:
        (result,) = append_snapshots(conn, [(datetime.now(timezone.utc), data, origin)])
    anchor_new_heads(engine)  # after the commit: an anchor must never hold a head that was rolled back
    return LogResult(**result)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return "unknown"


class Disclosure(BaseModel):
    request_id: str
    authority: str
    authority_country: str
    instrument: str
    emergency: bool = False
    received_at: str
    disclosed_at: str | None
    due_at: str | None = Field(None, description="Computed e-Evidence clock: production data due, or preservation lapses")
    outcome: str
    notice: str
    notice_due: str | None
    versions: int
    warnings: list[str] = Field(default_factory=list, description="Art. 48, overdue-notice and missed or near e-Evidence deadline messages")


def current_disclosures(conn: Connection, before: datetime | None = None) -> list[tuple[Disclosure, dict[str, Any]]]:
    """(row, newest snapshot data) per request: newest by the instant of its snapshot time, then by
    chain order. ``before``: only the snapshots taken before that time (the state an auditor saw
    then). Every time read here is the one inside the signed entry (contract §6), never the
    ``snapshot_time`` column beside it, which the chain does not cover."""
    newest: dict[str, tuple[datetime, dict[str, Any]]] = {}
    versions: dict[str, int] = {}
    for request_id, moment, entry in signed_snapshots(conn, before):
        versions[request_id] = versions.get(request_id, 0) + 1
        known = newest.get(request_id)
        if known is None or moment >= known[0]:  # the same instant: the later entry in the chain wins
            newest[request_id] = (moment, entry["data"])
    out = []
    for request_id, (_, d) in sorted(newest.items()):
        due = due_at(d)
        row = Disclosure(request_id=request_id, authority=d["authority"], authority_country=d["authority_country"],
                         instrument=d["instrument"], emergency=bool(d.get("emergency", False)), received_at=d["received_at"],
                         disclosed_at=d.get("disclosed_at"), due_at=format_time(due) if due else None,
                         outcome=d["outcome"], notice=d["notice"], notice_due=d.get("notice_due"), versions=versions[request_id])
        out.append((row, d))
    return out


def signed_snapshots(conn: Connection, before: datetime | None = None,
                     containing: str | None = None) -> Iterator[tuple[str, datetime, dict[str, Any]]]:
    """(request_id, snapshot instant, entry) in chain order, the time read from the signed body;
    ``before``: only those snapshots taken before it; ``containing``: a prefilter on the body."""
    ledger = LedgerEntry
    query = sa.select(ledger.c.request_id, ledger.c.body).order_by(ledger.c.seq)
    if containing is not None:
        query = query.where(ledger.c.body.like(f"%{containing}%"))
    for request_id, body in conn.execute(query):
        entry = orjson.loads(body)
        moment = parse_time(entry["snapshot_time"])
        if before is None or moment < before:
            yield entry.get("request_id", request_id), moment, entry


def list_disclosures(engine: Engine, open_only: bool = False, overdue_only: bool = False,
                     today: date | None = None, now: datetime | None = None,
                     due_within: float | None = None) -> tuple[list[Disclosure], list[str]]:
    """Current requests, each with its ``warnings``, and all those warnings (the CLI prints them
    on stderr). open: outcome pending and nothing disclosed; overdue: a delayed notice past its
    due date, or an open request whose e-Evidence clock has run out; ``due_within``: open
    requests whose clock runs out within that many hours of ``now`` (overdue ones included)."""
    now = now or datetime.now(timezone.utc)
    today = today or now.date()
    with engine.connect() as conn:
        current = current_disclosures(conn)
    rows, warnings = [], []
    for row, data in current:
        if open_only and not is_open(data):
            continue
        overdue = overdue_warning(row, today)
        if overdue_only and overdue is None and clock_state(data, now) != "overdue":
            continue
        if due_within is not None and not _due_within(data, now, due_within):
            continue
        row.warnings = [w for w in (art48_warning(data), eu_authority_warning(data), overdue, deadline_warning(data, now),
                                     clock_error_warning(data)) if w]
        rows.append(row)
        warnings += row.warnings
    return rows, warnings


def _due_within(data: dict[str, Any], now: datetime, hours: float) -> bool:
    due = due_at(data)
    return due is not None and is_open(data) and due <= now + timedelta(hours=hours)


def row_clock(row: Disclosure, now: datetime) -> str | None:
    """The clock state of a listed row (see :func:`registry.ledger.deadlines.clock_state`)."""
    if row.due_at is None:  # no clock, or one its stored times cannot give (the row's warning says so)
        return None
    return clock_state({"instrument": row.instrument, "outcome": row.outcome, "disclosed_at": row.disclosed_at,
                        "due_at": row.due_at}, now, parse_time(row.due_at) if row.due_at else None)


def overdue_warning(row: Disclosure, today: date) -> str | None:
    """A delayed notice to the data subjects whose due date has passed."""
    if row.notice == "delayed" and row.notice_due and date.fromisoformat(row.notice_due) < today:
        return f"{row.request_id}: notice to the data subjects was delayed until {row.notice_due} and is overdue"
    return None


def art48_warning(data: dict[str, Any]) -> str | None:
    """GDPR Art. 48: a court order or subpoena from outside the EEA is recognised only when based
    on an international agreement; warn when no legal_reference cites one. An order named after
    Regulation (EU) 2023/1543 but issued outside the EEA is such a decision too."""
    if data["authority_country"] in EEA or data["instrument"] not in _ART48:
        return None
    if _AGREEMENT.search(data.get("legal_reference") or ""):
        return None
    return (f"{data['request_id']}: {data['instrument'].replace('_', ' ')} from {data['authority']} "
            f"({data['authority_country']}) cites no international agreement (GDPR Art. 48)")


class Version(BaseModel):
    """One stored snapshot of a request: who logged it (``origin``), when, and what changed."""

    version: int
    seq: int
    snapshot_time: str
    recorded_at: str
    origin: str
    signed: bool
    hash: str
    changes: dict[str, tuple[Any, Any]] = Field(description="field: [before, after]; every field for the first version")
    data: dict[str, Any]


def request_history(engine: Engine, request_id: str) -> list[Version]:
    """Every version of one request in ledger order, each with the fields it changed."""
    t = LedgerEntry
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.c.seq, t.c.body, t.c.hash, t.c.signature)
                            .where(t.c.request_id == request_id).order_by(t.c.seq)).all()
    out: list[Version] = []
    before: dict[str, Any] = {}
    for n, row in enumerate(rows, 1):
        entry = orjson.loads(row.body)
        data = entry["data"]
        changes = {k: (before.get(k), data.get(k)) for k in sorted(set(before) | set(data)) if before.get(k) != data.get(k)}
        out.append(Version(version=n, seq=row.seq, snapshot_time=entry["snapshot_time"], recorded_at=entry["recorded_at"],
                           origin=entry.get("origin") or "", signed=row.signature is not None, hash=row.hash,
                           changes=changes, data=data))
        before = data
    return out
