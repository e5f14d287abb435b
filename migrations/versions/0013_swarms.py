"""swarms: swarm sessions, their members' work per round, and read-only share links

Reviewed: three new tables, nothing existing changes. A swarm's ledger rows are found through its
conversations (usage_records.conversation_id), so the ledger needs no new column.

Revision ID: 0013_swarms
Revises: 0010_documents
Create Date: 2026-12-07 14:07:49

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0013_swarms'
down_revision = '0015_human_review'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('swarms',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('goal', sa.Text(), nullable=False),
    sa.Column('coordinator_agent_id', sa.String(length=40), nullable=True),
    sa.Column('coordinator_name', sa.String(length=200), nullable=True),
    sa.Column('coordinator_conversation_id', sa.String(length=40), nullable=True),
    sa.Column('agents', sa.JSON(), nullable=False),
    sa.Column('max_rounds', sa.Integer(), nullable=False),
    sa.Column('max_parallel', sa.Integer(), nullable=False),
    sa.Column('budget_usd', sa.Float(), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('stop_reason', sa.String(length=40), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('rounds_done', sa.Integer(), nullable=False),
    sa.Column('cost', sa.Float(), nullable=False),
    sa.Column('prompt_tokens', sa.Integer(), nullable=False),
    sa.Column('completion_tokens', sa.Integer(), nullable=False),
    sa.Column('synthesis', sa.Text(), nullable=True),
    sa.Column('synthesis_by', sa.String(length=20), nullable=True),
    sa.Column('citations', sa.JSON(), nullable=False),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('api_key_id', sa.String(length=40), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_swarms'))
    )
    with op.batch_alter_table('swarms', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_swarms_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_swarms_status'), ['status'], unique=False)

    op.create_table('swarm_members',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('swarm_id', sa.String(length=40), nullable=False),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('agent_id', sa.String(length=40), nullable=False),
    sa.Column('agent_name', sa.String(length=200), nullable=False),
    sa.Column('conversation_id', sa.String(length=40), nullable=True),
    sa.Column('subtask', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('result', sa.Text(), nullable=True),
    sa.Column('error', sa.JSON(), nullable=True),
    sa.Column('cost', sa.Float(), nullable=False),
    sa.Column('prompt_tokens', sa.Integer(), nullable=False),
    sa.Column('completion_tokens', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['swarm_id'], ['swarms.id'], name=op.f('fk_swarm_members_swarm_id_swarms'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_swarm_members'))
    )
    with op.batch_alter_table('swarm_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_swarm_members_agent_id'), ['agent_id'], unique=False)
        batch_op.create_index('ix_swarm_members_swarm_round', ['swarm_id', 'round', 'position'], unique=False)

    op.create_table('swarm_shares',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('swarm_id', sa.String(length=40), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['swarm_id'], ['swarms.id'], name=op.f('fk_swarm_shares_swarm_id_swarms'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_swarm_shares'))
    )
    with op.batch_alter_table('swarm_shares', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_swarm_shares_swarm_id'), ['swarm_id'], unique=False)



def downgrade():
    with op.batch_alter_table('swarm_shares', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_swarm_shares_swarm_id'))

    op.drop_table('swarm_shares')
    with op.batch_alter_table('swarm_members', schema=None) as batch_op:
        batch_op.drop_index('ix_swarm_members_swarm_round')
        batch_op.drop_index(batch_op.f('ix_swarm_members_agent_id'))

    op.drop_table('swarm_members')
    with op.batch_alter_table('swarms', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_swarms_status'))
        batch_op.drop_index(batch_op.f('ix_swarms_created_at'))

    op.drop_table('swarms')
