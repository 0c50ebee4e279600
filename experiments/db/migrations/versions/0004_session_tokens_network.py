"""sessions.older_token_hashes (several tabs keep working) and sessions.network_key (a cap per
IP address)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 09:10:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('older_token_hashes', sa.JSON(), nullable=False,
                                      server_default='[]'))
        batch_op.add_column(sa.Column('network_key', sa.String(length=64), nullable=True))
        batch_op.create_index('ix_sessions_experiment_network', ['experiment_id', 'network_key'])


def downgrade() -> None:
    with op.batch_alter_table('sessions', schema=None) as batch_op:
        batch_op.drop_index('ix_sessions_experiment_network')
        batch_op.drop_column('network_key')
        batch_op.drop_column('older_token_hashes')
