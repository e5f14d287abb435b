"""agent operations: soul versions, memory notes and their history, messages between agents, reports_to

Reviewed: new tables only, and one nullable column on agents (existing agents report to nobody).
Each agent's current system prompt becomes its soul version 1, so every agent has a history.

Revision ID: 0012_agent_comms
Revises: 0010_documents
Create Date: 2026-12-07 14:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0012_agent_comms'
down_revision = '0013_swarms'
branch_labels = None
depends_on = None


def _fk(table, column, ondelete='CASCADE'):
    return sa.ForeignKeyConstraint([column], ['agents.id'], name=op.f(f'fk_{table}_{column}_agents'),
                                   ondelete=ondelete)


def upgrade():
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reports_to', sa.String(length=40), nullable=True))
        batch_op.create_index(batch_op.f('ix_agents_reports_to'), ['reports_to'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_agents_reports_to_agents'), 'agents', ['reports_to'], ['id'],
                                    ondelete='SET NULL')

    op.create_table('agent_soul_versions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('agent_id', sa.String(length=40), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('system_prompt', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    _fk('agent_soul_versions', 'agent_id'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_soul_versions')),
    sa.UniqueConstraint('agent_id', 'version', name='uq_agent_soul_versions_version')
    )
    with op.batch_alter_table('agent_soul_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_soul_versions_agent_id'), ['agent_id'], unique=False)

    op.create_table('agent_notes',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('agent_id', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    _fk('agent_notes', 'agent_id'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_notes')),
    sa.UniqueConstraint('agent_id', 'key', name='uq_agent_notes_key')
    )
    with op.batch_alter_table('agent_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_notes_agent_id'), ['agent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_agent_notes_created_at'), ['created_at'], unique=False)

    op.create_table('agent_note_versions',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('agent_id', sa.String(length=40), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('action', sa.String(length=10), nullable=False),
    sa.Column('text', sa.Text(), nullable=True),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('changed_by', sa.String(length=10), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    _fk('agent_note_versions', 'agent_id'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_note_versions'))
    )
    with op.batch_alter_table('agent_note_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_agent_note_versions_agent_id'), ['agent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_agent_note_versions_created_at'), ['created_at'], unique=False)

    op.create_table('agent_messages',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('sender_id', sa.String(length=40), nullable=False),
    sa.Column('recipient_id', sa.String(length=40), nullable=False),
    sa.Column('type', sa.String(length=20), nullable=False),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('in_reply_to', sa.String(length=40), nullable=True),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    _fk('agent_messages', 'sender_id'),
    _fk('agent_messages', 'recipient_id'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent_messages'))
    )
    with op.batch_alter_table('agent_messages', schema=None) as batch_op:
        for column in ('sender_id', 'recipient_id', 'in_reply_to', 'created_at'):
            batch_op.create_index(batch_op.f(f'ix_agent_messages_{column}'), [column], unique=False)

    # Every agent's current prompt is its first soul version.
    op.execute("INSERT INTO agent_soul_versions (id, agent_id, version, system_prompt, created_at) "
               "SELECT 'soul_' || id, id, 1, system_prompt, updated_at FROM agents")


def downgrade():
    op.drop_table('agent_messages')
    op.drop_table('agent_note_versions')
    op.drop_table('agent_notes')
    op.drop_table('agent_soul_versions')
    with op.batch_alter_table('agents', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_agents_reports_to_agents'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_agents_reports_to'))
        batch_op.drop_column('reports_to')
