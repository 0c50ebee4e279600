"""admin_sessions (server-side admin logins, revoked at logout) and admin_login_failures
(lockout with backoff)

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 09:20:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('admin_sessions',
                    sa.Column('id', sa.Integer(), nullable=False),
                    sa.Column('sid_sha256', sa.String(length=64), nullable=False),
                    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
                    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
                    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
                    sa.Column('network_key', sa.String(length=64), nullable=False),
                    sa.PrimaryKeyConstraint('id'),
                    sa.UniqueConstraint('sid_sha256'))
    op.create_table('admin_login_failures',
                    sa.Column('network_key', sa.String(length=64), nullable=False),
                    sa.Column('failures', sa.Integer(), nullable=False),
                    sa.Column('last_failure_at', sa.DateTime(timezone=True), nullable=False),
                    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
                    sa.PrimaryKeyConstraint('network_key'))


def downgrade() -> None:
    op.drop_table('admin_login_failures')
    op.drop_table('admin_sessions')
