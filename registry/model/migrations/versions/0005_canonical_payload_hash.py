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
import sqlalchemy as sa
import sqlmodel

from registry.model.rehash import rehash_events


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('consumer_offset', schema=None) as batch_op:
        batch_op.add_column(sa.Column('topic_id', sqlmodel.sql.sqltypes.AutoString(), nullable=True))
    rehash_events(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table('consumer_offset', schema=None) as batch_op:
        batch_op.drop_column('topic_id')
    # payload hashes: the old ones cannot be rebuilt; the canonical ones are as good a key
