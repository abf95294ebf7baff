"""each stored offset keeps a fingerprint of the last record it applied (its timestamp and a hash
of its key and value): where the broker reports no topic id, or the row has none (offsets stored
before 0005 kept ids), the record at the stored offset minus one tells a re-created topic apart

Existing rows have no fingerprint: the worker cannot verify them and reads their partitions again
from the log start once (the (source, id) dedupe absorbs the re-read), unless the broker's topic
id can be checked instead.

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('consumer_offset', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_record', sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('consumer_offset', schema=None) as batch_op:
        batch_op.drop_column('last_record')
