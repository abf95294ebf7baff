"""tokens can be listed and revoked: when each was last used, when it was revoked, and which
token each page session signed in with (revoking a token ends its sessions at once)

Existing tokens are live and never used as far as the store knows; existing sessions name no
token (revoking ends them by the token's name).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_used_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('revoked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.add_column(sa.Column('token_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_web_session_token_id'), ['token_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('web_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_web_session_token_id'))
        batch_op.drop_column('token_id')
    with op.batch_alter_table('api_token', schema=None) as batch_op:
        batch_op.drop_column('revoked_at')
        batch_op.drop_column('last_used_at')
