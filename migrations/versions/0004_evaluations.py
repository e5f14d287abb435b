"""evaluations, cases, runs, results

Reviewed: results are unique per (run, case) so a resumed run never scores a case twice; cases and
runs go with their evaluation (CASCADE); target_id is not a foreign key because it points at one of
four tables, depending on the evaluation's type.

Revision ID: 0004_evaluations
Revises: 0003_tools
Create Date: 2026-11-23 16:32:07.300522

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004_evaluations'
down_revision = '0003_tools'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('evaluations',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('type', sa.String(length=30), nullable=False),
    sa.Column('target_id', sa.String(length=40), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('thresholds', sa.JSON(), nullable=False),
    sa.Column('settings', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evaluations')),
    sa.UniqueConstraint('name', name=op.f('uq_evaluations_name'))
    )
    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluations_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_evaluations_target_id'), ['target_id'], unique=False)

    op.create_table('evaluation_cases',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('evaluation_id', sa.String(length=40), nullable=False),
    sa.Column('ordinal', sa.Integer(), nullable=False),
    sa.Column('input', sa.Text(), nullable=False),
    sa.Column('expected_output', sa.JSON(), nullable=True),
    sa.Column('expected_sources', sa.JSON(), nullable=False),
    sa.Column('expected_no_answer', sa.Boolean(), nullable=False),
    sa.Column('metadata', sa.JSON(), nullable=False),
    sa.Column('filters', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['evaluation_id'], ['evaluations.id'], name=op.f('fk_evaluation_cases_evaluation_id_evaluations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evaluation_cases'))
    )
    with op.batch_alter_table('evaluation_cases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluation_cases_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_evaluation_cases_evaluation_id'), ['evaluation_id'], unique=False)

    op.create_table('evaluation_runs',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('evaluation_id', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('trigger', sa.String(length=20), nullable=False),
    sa.Column('passed', sa.Boolean(), nullable=True),
    sa.Column('cases_total', sa.Integer(), nullable=False),
    sa.Column('cases_done', sa.Integer(), nullable=False),
    sa.Column('cases_failed', sa.Integer(), nullable=False),
    sa.Column('target_snapshot', sa.JSON(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('thresholds', sa.JSON(), nullable=False),
    sa.Column('totals', sa.JSON(), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['evaluation_id'], ['evaluations.id'], name=op.f('fk_evaluation_runs_evaluation_id_evaluations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evaluation_runs'))
    )
    with op.batch_alter_table('evaluation_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluation_runs_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_evaluation_runs_evaluation_id'), ['evaluation_id'], unique=False)

    op.create_table('evaluation_results',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('case_id', sa.String(length=40), nullable=False),
    sa.Column('ordinal', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('output', sa.JSON(), nullable=False),
    sa.Column('scores', sa.JSON(), nullable=False),
    sa.Column('metric_errors', sa.JSON(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('warnings', sa.JSON(), nullable=False),
    sa.Column('latency_ms', sa.Double(), nullable=True),
    sa.Column('prompt_tokens', sa.Integer(), nullable=False),
    sa.Column('completion_tokens', sa.Integer(), nullable=False),
    sa.Column('cost', sa.Double(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['evaluation_runs.id'], name=op.f('fk_evaluation_results_run_id_evaluation_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evaluation_results'))
    )
    with op.batch_alter_table('evaluation_results', schema=None) as batch_op:
        batch_op.create_index('uq_evaluation_results_run_case', ['run_id', 'case_id'], unique=True)



def downgrade():
    with op.batch_alter_table('evaluation_results', schema=None) as batch_op:
        batch_op.drop_index('uq_evaluation_results_run_case')

    op.drop_table('evaluation_results')
    with op.batch_alter_table('evaluation_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluation_runs_evaluation_id'))
        batch_op.drop_index(batch_op.f('ix_evaluation_runs_created_at'))

    op.drop_table('evaluation_runs')
    with op.batch_alter_table('evaluation_cases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluation_cases_evaluation_id'))
        batch_op.drop_index(batch_op.f('ix_evaluation_cases_created_at'))

    op.drop_table('evaluation_cases')
    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluations_target_id'))
        batch_op.drop_index(batch_op.f('ix_evaluations_created_at'))

    op.drop_table('evaluations')
