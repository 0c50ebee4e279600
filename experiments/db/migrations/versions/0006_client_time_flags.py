"""client-reported times checked against the server's clock: sessions.instruction_s_claimed,
sessions.time_flags, responses.rt_flag

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 09:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('instruction_s_claimed', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('time_flags', sa.JSON(), nullable=False,
                                      server_default='[]'))
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rt_flag', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('responses', schema=None) as batch_op:
        batch_op.drop_column('rt_flag')
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_column('time_flags')
        batch_op.drop_column('instruction_s_claimed')
