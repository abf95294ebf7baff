"""manifest versions take effect at a time of their own

Existing versions took effect when they were declared: ``effective_from = declared_at``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('manifest_version', schema=None) as batch_op:
        batch_op.add_column(sa.Column('effective_from', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    op.execute("UPDATE manifest_version SET effective_from = declared_at")
    with op.batch_alter_table('manifest_version', schema=None) as batch_op:
        batch_op.alter_column('effective_from', existing_type=sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('manifest_version', schema=None) as batch_op:
        batch_op.drop_column('effective_from')
