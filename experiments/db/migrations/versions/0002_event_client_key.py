"""events.client_key: a client-chosen key that makes a retried event a no-op

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 07:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('client_key', sa.String(length=64), nullable=True))
        batch_op.create_index('uq_event_session_client_key', ['session_id', 'client_key'],
                              unique=True)


def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('uq_event_session_client_key')
        batch_op.drop_column('client_key')
