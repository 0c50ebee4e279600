"""one trial and response record for every task type: trials.stimulus (JSON) + answer_key,
responses.answer (JSON); IMI's 2-AFC columns moved into them

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04 17:30:00

Columns are added and dropped with plain ALTER TABLE on every dialect: SQLite's batch mode would
recreate `trials`, and dropping it cascades to every response (foreign keys are on).
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

CHUNK = 2000
TRIAL_COLUMNS = ('query_a', 'query_b', 'references_max', 'references_min')


def _chunks(rows):
    for start in range(0, len(rows), CHUNK):
        yield rows[start:start + CHUNK]


def _empty_json():
    return sa.text("'{}'")


def upgrade() -> None:
    connection = op.get_bind()
    op.add_column('trials', sa.Column('stimulus', sa.JSON(), nullable=False,
                                      server_default=_empty_json()))
    op.add_column('trials', sa.Column('answer_key', sa.String(length=40), nullable=False,
                                      server_default=''))
    op.add_column('responses', sa.Column('answer', sa.JSON(), nullable=False,
                                         server_default=_empty_json()))
    old_trials = sa.table('trials', sa.column('id', sa.Integer),
                          sa.column('query_a', sa.String), sa.column('query_b', sa.String),
                          sa.column('correct_choice', sa.String),
                          sa.column('references_max', sa.JSON),
                          sa.column('references_min', sa.JSON))
    new_trials = sa.table('trials', sa.column('id', sa.Integer), sa.column('stimulus', sa.JSON),
                          sa.column('answer_key', sa.String))
    rows = [{'row_id': r.id, 'stimulus': {c: getattr(r, c) for c in TRIAL_COLUMNS},
             'key': r.correct_choice} for r in connection.execute(sa.select(old_trials))]
    for chunk in _chunks(rows):
        connection.execute(new_trials.update().where(new_trials.c.id == sa.bindparam('row_id'))
                           .values(stimulus=sa.bindparam('stimulus'),
                                   answer_key=sa.bindparam('key')), chunk)
    old_responses = sa.table('responses', sa.column('id', sa.Integer),
                             sa.column('choice', sa.String), sa.column('confidence', sa.Integer))
    new_responses = sa.table('responses', sa.column('id', sa.Integer),
                             sa.column('answer', sa.JSON))
    rows = [{'row_id': r.id, 'answer': {'choice': r.choice, 'confidence': r.confidence}}
            for r in connection.execute(sa.select(old_responses))]
    for chunk in _chunks(rows):
        connection.execute(new_responses.update()
                           .where(new_responses.c.id == sa.bindparam('row_id'))
                           .values(answer=sa.bindparam('answer')), chunk)
    for column in (*TRIAL_COLUMNS, 'correct_choice'):
        op.drop_column('trials', column)
    for column in ('choice', 'confidence'):
        op.drop_column('responses', column)


def downgrade() -> None:
    """Back to the 2-AFC columns (rows of other task types keep empty values there)."""
    connection = op.get_bind()
    op.add_column('trials', sa.Column('query_a', sa.String(300), nullable=False, server_default=''))
    op.add_column('trials', sa.Column('query_b', sa.String(300), nullable=False, server_default=''))
    op.add_column('trials', sa.Column('correct_choice', sa.String(1), nullable=False,
                                      server_default=''))
    for column in ('references_max', 'references_min'):
        op.add_column('trials', sa.Column(column, sa.JSON(), nullable=False,
                                          server_default=sa.text("'[]'")))
    op.add_column('responses', sa.Column('choice', sa.String(1), nullable=False, server_default=''))
    op.add_column('responses', sa.Column('confidence', sa.Integer(), nullable=False,
                                         server_default='0'))
    trials = sa.table('trials', sa.column('id', sa.Integer), sa.column('stimulus', sa.JSON),
                      sa.column('answer_key', sa.String), sa.column('query_a', sa.String),
                      sa.column('query_b', sa.String), sa.column('correct_choice', sa.String),
                      sa.column('references_max', sa.JSON), sa.column('references_min', sa.JSON))
    rows = []
    for r in connection.execute(sa.select(trials.c.id, trials.c.stimulus, trials.c.answer_key)):
        stimulus = r.stimulus or {}
        rows.append({'row_id': r.id, 'a': stimulus.get('query_a', ''),
                     'b': stimulus.get('query_b', ''), 'key': r.answer_key[:1],
                     'rmax': stimulus.get('references_max', []),
                     'rmin': stimulus.get('references_min', [])})
    for chunk in _chunks(rows):
        connection.execute(trials.update().where(trials.c.id == sa.bindparam('row_id')).values(
            query_a=sa.bindparam('a'), query_b=sa.bindparam('b'),
            correct_choice=sa.bindparam('key'), references_max=sa.bindparam('rmax'),
            references_min=sa.bindparam('rmin')), chunk)
    responses = sa.table('responses', sa.column('id', sa.Integer), sa.column('answer', sa.JSON),
                         sa.column('choice', sa.String), sa.column('confidence', sa.Integer))
    rows = [{'row_id': r.id, 'choice': str((r.answer or {}).get('choice', ''))[:1],
             'confidence': int((r.answer or {}).get('confidence', 0))}
            for r in connection.execute(sa.select(responses.c.id, responses.c.answer))]
    for chunk in _chunks(rows):
        connection.execute(responses.update().where(responses.c.id == sa.bindparam('row_id'))
                           .values(choice=sa.bindparam('choice'),
                                   confidence=sa.bindparam('confidence')), chunk)
    op.drop_column('trials', 'stimulus')
    op.drop_column('trials', 'answer_key')
    op.drop_column('responses', 'answer')
