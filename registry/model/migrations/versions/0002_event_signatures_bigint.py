"""flow aggregates per event signature; 64-bit counts, sums, offsets and ids

The flow tables were keyed per category, so a sum over a recipient's rows counted an event once
per category it carried. They are now keyed by the event's whole category set and rebuilt from
the stored events (the evidence), so existing stores answer with the contract's count semantics.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from alembic import op
import orjson
import sqlalchemy as sa
import sqlmodel


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite's INTEGER is 64-bit already
_WIDEN = (("event", "id", False), ("dead_letter", "id", False), ("dead_letter", "offset", True),
          ("ledger_entry", "seq", False), ("consumer_offset", "next_offset", False), ("subject_flow", "events", False))


def _flow_table(name: str, first: sa.Column[Any]) -> None:
    op.create_table(name, first,
                    *(sa.Column(c, sqlmodel.sql.sqltypes.AutoString(), nullable=False)
                      for c in ("source", "recipient", "categories", "purpose", "legal_basis", "activity", "country", "mechanism")),
                    sa.Column('events', _BIG, nullable=False),
                    sa.Column('records', _BIG, nullable=False),
                    sa.Column('first_seen', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
                    sa.Column('last_seen', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
                    sa.PrimaryKeyConstraint(first.name, 'source', 'recipient', 'categories', 'purpose', 'legal_basis', 'activity',
                                            'country', 'mechanism'),
                    sqlite_with_rowid=False)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for table, column, nullable in _WIDEN:
            op.alter_column(table, column, type_=sa.BigInteger(), existing_nullable=nullable)
    op.drop_table('flow_hour')
    op.drop_table('flow_day')
    _flow_table('flow_day', sa.Column('day', sa.Date(), nullable=False))
    _flow_table('flow_hour', sa.Column('hour', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False))
    _rebuild(bind)


def _rebuild(bind: sa.Connection) -> None:
    """Re-aggregate every stored transfer (self-contained: no application code, which may change)."""
    sqlite = bind.dialect.name == "sqlite"
    hours: dict[tuple[Any, ...], list[Any]] = {}
    rows = bind.execute(sa.text("SELECT source, time, body FROM event WHERE type = 'registry.transfer.v1'"))
    for source, moment, body in rows:
        if isinstance(moment, str):
            moment = datetime.fromisoformat(moment).replace(tzinfo=timezone.utc)
        moment = moment.astimezone(timezone.utc)
        envelope = orjson.loads(body)
        d = envelope.get("data", envelope)
        key = (moment.replace(minute=0, second=0, microsecond=0), source, d["recipient"],
               ",".join(sorted(set(d["data_categories"]))), d["purpose"], d["legal_basis"], d.get("activity", ""),
               d.get("destination_country", ""), d.get("transfer_mechanism", ""))
        row = hours.setdefault(key, [0, 0, moment, moment])
        row[0] += 1
        row[1] += d.get("record_count", 1)
        row[2], row[3] = min(row[2], moment), max(row[3], moment)
    days: dict[tuple[Any, ...], list[Any]] = {}
    for key, counts in hours.items():
        row = days.setdefault((key[0].date(), *key[1:]), [0, 0, counts[2], counts[3]])
        row[0] += counts[0]
        row[1] += counts[1]
        row[2], row[3] = min(row[2], counts[2]), max(row[3], counts[3])

    def stamp(value: Any) -> Any:  # SQLite keeps times and days as SQLAlchemy writes them
        if sqlite and isinstance(value, datetime):
            return value.strftime("%Y-%m-%d %H:%M:%S.%f")
        return value.isoformat() if sqlite and isinstance(value, date) else value

    columns = "source, recipient, categories, purpose, legal_basis, activity, country, mechanism, events, records, first_seen, last_seen"
    for name, first, table in (("flow_hour", "hour", hours), ("flow_day", "day", days)):
        if table:
            values = ", ".join(f":p{i}" for i in range(13))
            bind.execute(sa.text(f"INSERT INTO {name} ({first}, {columns}) VALUES ({values})"),
                         [{f"p{i}": stamp(v) for i, v in enumerate((*k, *c))} for k, c in sorted(table.items())])


def downgrade() -> None:
    raise NotImplementedError("0002 rebuilt the flow aggregates per event signature; restore a backup to go back")
