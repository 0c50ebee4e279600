"""images.role up to 32 characters (the occlusion task's `reference_blurred`)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-04 18:00:00

On SQLite the batch mode copies `images` into a new table: no other table references it, so
nothing cascades.
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.alter_column('role', existing_type=sa.String(length=16),
                              type_=sa.String(length=32), existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.alter_column('role', existing_type=sa.String(length=32),
                              type_=sa.String(length=16), existing_nullable=False)
