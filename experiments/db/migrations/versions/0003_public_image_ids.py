"""images.public_id: an opaque, per-image id used in every URL a participant sees

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 08:45:00
"""
import secrets

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.add_column(sa.Column('public_id', sa.String(length=40), nullable=True))
    images = sa.table('images', sa.column('id', sa.Integer), sa.column('public_id', sa.String))
    connection = op.get_bind()
    ids = [row[0] for row in connection.execute(sa.select(images.c.id))]
    for start in range(0, len(ids), 1000):
        connection.execute(images.update().where(images.c.id == sa.bindparam('row_id'))
                           .values(public_id=sa.bindparam('new_id')),
                           [{'row_id': i, 'new_id': secrets.token_hex(16)}
                            for i in ids[start:start + 1000]])
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.alter_column('public_id', existing_type=sa.String(length=40), nullable=False)
        batch_op.create_index('uq_image_experiment_public', ['experiment_id', 'public_id'],
                              unique=True)


def downgrade() -> None:
    with op.batch_alter_table('images', schema=None) as batch_op:
        batch_op.drop_index('uq_image_experiment_public')
        batch_op.drop_column('public_id')
