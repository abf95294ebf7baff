"""each stored offset keeps a fingerprint of the last record it applied (its timestamp and a hash
of its key and value): where the broker reports no topic id, or the row has none (offsets stored
before 0005 kept ids), the record at the stored offset minus one tells a re-created topic apart

Existing rows have no fingerprint: the worker cannot verify them and reads their partitions again
from the log start once (the (source, id) dedupe absorbs the re-read), unless the broker's topic
id can be checked instead.

Payload hashes: the canonical event now holds the schema's defaults where the event left them out
(``record_count`` 1, ``emergency`` false, ``subject_count`` the number of ``subject_refs``), so a
redelivery that spells a default out is a duplicate. Stored hashes are recomputed as in 0005 (the
same function), so stores that ran 0005 before this change agree too.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa

from registry.model.rehash import rehash_events


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('consumer_offset', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_record', sa.String(), nullable=True))
    rehash_events(op.get_bind())


def downgrade() -> None:
    with op.batch_alter_table('consumer_offset', schema=None) as batch_op:
        batch_op.drop_column('last_record')
