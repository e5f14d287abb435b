"""agent tasks; agents' task concurrency and presence columns; usage_records.task_id

Reviewed: one new table; new agent columns are nullable or default to 1 for existing agents; task_id on the
ledger is nullable (earlier rows were not made for a task).

Revision ID: 0011_agent_tasks
Revises: 0010_documents
Create Date: 2026-12-07 14:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011_agent_tasks'
down_revision = '0014_handoff'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('agent_tasks',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('agent_id', sa.String(length=40), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('instructions', sa.Text(), nullable=False),
    sa.Column('priority', sa.String(length=10), nullable=False),
    sa.Column('priority_rank', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('schedule', sa.JSON(), nullable=True),
    sa.Column('next_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('run_now', sa.Boolean(), nullable=False),
    sa.Column('conversation_id', sa.String(length=40), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('error', sa.JSON(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['agent_id'], ['agents.id'], name=op.f('fk_agent_tasks_agent_id_agents'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_tasks'))
    )
    with op.batch_alter_table('agent_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_agent_tasks_queue', ['agent_id', 'status', 'priority_rank', 'created_at'],
                              unique=False)
        batch_op.create_index(batch_op.f('ix_agent_tasks_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_agent_tasks_next_run_at'), ['next_run_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_agent_tasks_finished_at'), ['finished_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_agent_tasks_created_at'), ['created_at'], unique=False)

    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_concurrent_tasks', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_activity_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_wake_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('last_woken_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.alter_column('max_concurrent_tasks', server_default=None)

    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.add_column(sa.Column('task_id', sa.String(length=40), nullable=True))
        batch_op.create_index(batch_op.f('ix_usage_records_task_id'), ['task_id'], unique=False)


def downgrade():
    with op.batch_alter_table('usage_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_usage_records_task_id'))
        batch_op.drop_column('task_id')
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_column('last_woken_at')
        batch_op.drop_column('last_wake_reason')
        batch_op.drop_column('last_activity_at')
        batch_op.drop_column('last_seen_at')
        batch_op.drop_column('max_concurrent_tasks')
    op.drop_table('agent_tasks')
