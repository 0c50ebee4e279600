"""trials.is_calibration: trials of the calibration model's units mixed into the main block
(`[calibration]` in the spec)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05 02:30:00

A column added in place with the server default false: existing trials read as the study's
own, which is what they were.
"""
import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('trials', sa.Column('is_calibration', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite >= 3.35), as in 0011: batch mode would recreate the table.
    op.drop_column('trials', 'is_calibration')
