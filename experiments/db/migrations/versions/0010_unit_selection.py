"""units.selection_group and units.machine_score: main units chosen by a machine observer's
scores (`[select_units]`)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04 21:00:00

Nullable columns added in place: existing units read as not selected by score.
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('units', sa.Column('selection_group', sa.String(length=16), nullable=True))
    op.add_column('units', sa.Column('machine_score', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('units', schema=None) as batch_op:
        batch_op.drop_column('machine_score')
        batch_op.drop_column('selection_group')
