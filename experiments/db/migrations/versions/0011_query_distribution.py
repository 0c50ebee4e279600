"""tasks.query_distribution and trials.query_distribution: queries from shifted pools or
other domains as a design factor (`query_distribution` in the spec)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 23:30:00

Columns added in place with the server default `in`: existing tasks and trials read as having
the stimulus sets' own (in-distribution) queries, which is what they had.
"""
import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ('tasks', 'trials'):
        op.add_column(table, sa.Column('query_distribution', sa.String(length=40),
                                       nullable=False, server_default='in'))


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite >= 3.35): batch mode would recreate `tasks`, and dropping it
    # cascades into its trials on SQLite.
    for table in ('trials', 'tasks'):
        op.drop_column(table, 'query_distribution')
