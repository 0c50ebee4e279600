"""exported lab tasks held until synced or released; late syncs kept apart; client times:
sessions.held_offline, sessions.late_of, responses.client_recorded_at

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 11:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('held_offline', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('late_of', sa.String(length=32), nullable=True))
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('client_recorded_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.drop_column('client_recorded_at')
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_column('late_of')
        batch_op.drop_column('held_offline')
