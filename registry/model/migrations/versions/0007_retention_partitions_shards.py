"""retention of the registry's own data, month partitions, aggregate shards

- ``retention_mark``: what retention removed (contract §6).
- ``flow_day``, ``flow_hour``, ``subject_flow`` gain ``shard`` (the Kafka partition) in their
  keys, so that two workers never update one aggregate row; existing rows are shard 0.
- ``event`` loses its surrogate ``id``: the key is ``(event_id, source, time)``; on PostgreSQL
  the table is partitioned by month of ``time`` (existing rows are copied into their months),
  with a BRIN index on ``time``; SQLite gets a plain index on ``time``.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""
from datetime import datetime, timezone

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TEXT = sqlmodel.sql.sqltypes.AutoString
_TIME = sqlmodel.sql.sqltypes.UTCDateTime
_FLOW = ("source", "recipient", "categories", "purpose", "legal_basis", "activity", "country", "mechanism")


def _flow_columns(first: sa.Column) -> list:  # type: ignore[type-arg]
    return [first, *(sa.Column(c, _TEXT(), nullable=False) for c in _FLOW),
            sa.Column('shard', sa.Integer(), nullable=False),
            sa.Column('events', _BIG, nullable=False), sa.Column('records', _BIG, nullable=False),
            sa.Column('first_seen', _TIME(), nullable=False), sa.Column('last_seen', _TIME(), nullable=False),
            sa.PrimaryKeyConstraint(first.name, *_FLOW, 'shard')]


def _subject_columns() -> list:  # type: ignore[type-arg]
    keys = ('week', 'subject_ref', 'recipient', 'source', 'purpose', 'categories')
    return [sa.Column('week', sa.Date(), nullable=False),
            *(sa.Column(c, _TEXT(), nullable=False) for c in keys[1:]),
            sa.Column('shard', sa.Integer(), nullable=False), sa.Column('events', _BIG, nullable=False),
            sa.Column('first_seen', _TIME(), nullable=False), sa.Column('last_seen', _TIME(), nullable=False),
            sa.PrimaryKeyConstraint(*keys, 'shard')]


def _rebuild(name: str, columns: list) -> None:  # type: ignore[type-arg]
    """Create ``name`` anew with ``columns`` and copy its rows (shard 0)."""
    names = [c.name for c in columns if isinstance(c, sa.Column) and c.name != 'shard']
    # built under a new name and renamed: index and constraint names are global on PostgreSQL
    op.create_table(f"{name}_new", *columns, sqlite_with_rowid=False)
    quoted = ", ".join(f'"{c}"' for c in names)
    op.execute(f"INSERT INTO {name}_new ({quoted}, shard) SELECT {quoted}, 0 FROM {name}")
    op.drop_table(name)
    op.rename_table(f"{name}_new", name)


def upgrade() -> None:
    bind = op.get_bind()
    postgres = bind.dialect.name == "postgresql"
    op.create_table('retention_mark',
                    sa.Column('kind', _TEXT(), nullable=False),
                    sa.Column('purged_before', _TIME(), nullable=False),
                    sa.Column('applied_at', _TIME(), nullable=False),
                    sa.PrimaryKeyConstraint('kind'))
    _rebuild('flow_day', _flow_columns(sa.Column('day', sa.Date(), nullable=False)))
    _rebuild('flow_hour', _flow_columns(sa.Column('hour', _TIME(), nullable=False)))
    _rebuild('subject_flow', _subject_columns())

    op.drop_index('ix_event_recipient_time', table_name='event')
    columns = [sa.Column('event_id', _TEXT(), nullable=False), sa.Column('source', _TEXT(), nullable=False),
               sa.Column('time', _TIME(), nullable=False), sa.Column('type', _TEXT(), nullable=False),
               sa.Column('recipient', _TEXT(), nullable=True), sa.Column('payload_hash', _TEXT(), nullable=False),
               sa.Column('body', _TEXT(), nullable=False), sa.PrimaryKeyConstraint('event_id', 'source', 'time')]
    if postgres:
        op.create_table('event_new', *columns, postgresql_partition_by='RANGE (time)')
        months = [m for (m,) in bind.exec_driver_sql(
            "SELECT DISTINCT date_trunc('month', time AT TIME ZONE 'UTC') FROM event ORDER BY 1")]
        for month in months:
            start = month.replace(tzinfo=timezone.utc)
            end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
            op.execute(f"CREATE TABLE event_p{start.year:04d}{start.month:02d} PARTITION OF event_new "
                       f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')")
    else:
        op.create_table('event_new', *columns)
    cols = "event_id, source, time, type, recipient, payload_hash, body"
    op.execute(f"INSERT INTO event_new ({cols}) SELECT {cols} FROM event")
    op.drop_table('event')
    op.rename_table('event_new', 'event')
    op.create_index('ix_event_recipient_time', 'event', ['recipient', 'time'], unique=False)
    op.create_index('ix_event_time', 'event', ['time'], unique=False, postgresql_using='brin')


def downgrade() -> None:
    raise NotImplementedError("0007 is not reversible: restore a backup taken before the upgrade")
