"""payload hashes over the canonical event (contract v3 §2); topic ids beside stored offsets (§3)

Stored hashes took the event time as it was written (``Z`` and ``+00:00`` hashed apart), so a
redelivery re-serialised by another client was refused as a conflicting duplicate. Each stored
event's hash is recomputed from its stored body with ``registry.model.events.payload_hash``, the
function decoding uses, so stored and incoming hashes agree. Bodies are read page by page in key
order of their key (a large store is not held in memory); a body that does not parse keeps its hash.

``consumer_offset.topic_id`` (nullable) keeps the broker's id of the topic whose offsets a row
holds, so that a topic deleted and re-created under the same name is read from its start even
when its new log is longer than the stored offset. Existing rows start without one (adopted by
the worker at its next lag check).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06
"""
from alembic import op
import orjson
import sqlalchemy as sa
import sqlmodel

from registry.model.events import payload_hash
from registry.model.times import parse_time


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_PAGE = 5000
_COUNTS = ("record_count", "subject_count")


def _canonical_hash(body: str) -> str | None:
    try:
        envelope = orjson.loads(body)
        data = dict(envelope["data"])
        for name in _COUNTS:  # as decoding stores them: 7.0 counted as 7
            if isinstance(data.get(name), float):
                data[name] = int(data[name])
        return payload_hash(envelope["type"], parse_time(envelope["time"]), data)
    except (ValueError, KeyError, TypeError, OverflowError):
        return None


def upgrade() -> None:
    with op.batch_alter_table('consumer_offset', schema=None) as batch_op:
        batch_op.add_column(sa.Column('topic_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    conn = op.get_bind()
    after = 0
    while True:
        rows = conn.execute(sa.text(f"SELECT id, body, payload_hash FROM event WHERE id > :a ORDER BY id LIMIT {_PAGE}"),
                            {"a": after}).fetchall()
        if not rows:
            break
        changes = [{"i": key, "h": new} for key, body, old in rows
                   for new in (_canonical_hash(body),) if new is not None and new != old]
        if changes:
            conn.execute(sa.text("UPDATE event SET payload_hash = :h WHERE id = :i"), changes)
        after = rows[-1][0]


def downgrade() -> None:
    with op.batch_alter_table('consumer_offset', schema=None) as batch_op:
        batch_op.drop_column('topic_id')
    # payload hashes: the old ones cannot be rebuilt; the canonical ones are as good a key
