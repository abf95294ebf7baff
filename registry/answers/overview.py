"""The dashboard's numbers as one library call (pages, and anything else, ask here): events and
recipients observed, dead letters by reason, drift findings by kind, requests from authorities
open and overdue, and whether the disclosure ledger verifies."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timezone

import sqlalchemy as sa
from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine

from registry.ledger import chain as ledger
from registry.ledger import disclosures
from registry.model.tables import DeadLetter, EventRow, FlowDay, SubjectFlow

from . import drift as drift_mod

__all__ = ["Overview", "overview", "subjects_of"]


class Overview(BaseModel):
    events: int
    recipients: int
    dead_letters: dict[str, int]  # by reason, only those still dead
    drift: dict[str, int]  # by kind, in the contract's order
    requests: int
    open_requests: int
    overdue_requests: int = Field(description="Delayed notices past their date and e-Evidence clocks run out")
    due_24h: int = Field(0, description="Open requests whose e-Evidence clock runs out within 24 hours")
    ledger: ledger.VerifyResult


def overview(engine: Engine, today: date | None = None, now: datetime | None = None) -> Overview:
    d, flows = DeadLetter, FlowDay
    with engine.connect() as conn:
        events = conn.execute(sa.select(sa.func.count()).select_from(EventRow)).scalar_one()
        recipients = conn.execute(sa.select(sa.func.count(sa.distinct(flows.c.recipient)))).scalar_one()
        reasons: dict[str, int] = dict(conn.execute(sa.select(d.c.reason, sa.func.count()).where(d.c.status == "dead")
                                    .group_by(d.c.reason).order_by(d.c.reason)).all())
    kinds = Counter(r.kind for r in drift_mod.drift(engine))
    now = now or datetime.now(timezone.utc)
    today = today or now.date()
    rows, _ = disclosures.list_disclosures(engine, today=today, now=now)
    clocks = [disclosures.row_clock(r, now) for r in rows]
    overdue = [r for r, c in zip(rows, clocks) if disclosures.overdue_warning(r, today) is not None or c == "overdue"]
    return Overview(events=events, recipients=recipients, dead_letters={k: int(v) for k, v in reasons.items()},
                    drift={k: kinds[k] for k in drift_mod.KINDS if kinds[k]}, requests=len(rows),
                    open_requests=sum(1 for r in rows if r.outcome == "pending" and not r.disclosed_at), overdue_requests=len(overdue),
                    due_24h=clocks.count("due_24h"),
                    ledger=ledger.verify(engine))


def subjects_of(engine: Engine, recipient: str) -> int:
    """Distinct data subjects (subject refs) the subject index holds for ``recipient``."""
    s = SubjectFlow
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count(sa.distinct(s.c.subject_ref))).where(s.c.recipient == recipient)).scalar_one())
