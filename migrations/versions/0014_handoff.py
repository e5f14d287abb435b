"""Human hand-off: accounts, their keys and invitations, requests, messages and events

Reviewed: new tables only; nothing existing changes. Downgrade drops them (children first).

Revision ID: 0014_handoff
Revises: 0010_documents
Create Date: 2026-12-07 14:04:45.109409

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0014_handoff'
down_revision = '0012_agent_comms'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('handoff_accounts',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=50), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=False),
    sa.Column('telegram_user_id', sa.String(length=40), nullable=True),
    sa.Column('webhook_secret', sa.Text(), nullable=False),
    sa.Column('invitation_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handoff_accounts')),
    sa.UniqueConstraint('email', name=op.f('uq_handoff_accounts_email')),
    sa.UniqueConstraint('name', name=op.f('uq_handoff_accounts_name')),
    sa.UniqueConstraint('telegram_user_id', name=op.f('uq_handoff_accounts_telegram_user_id'))
    )
    with op.batch_alter_table('handoff_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_handoff_accounts_created_at'), ['created_at'], unique=False)

    op.create_table('handoff_invitations',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('created_by_key_id', sa.String(length=40), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('used_by_account_id', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handoff_invitations')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_handoff_invitations_token_hash'))
    )
    op.create_table('handoff_keys',
    sa.Column('api_key_id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=False),
    sa.Column('window_start', sa.Integer(), nullable=False),
    sa.Column('window_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['handoff_accounts.id'], name=op.f('fk_handoff_keys_account_id_handoff_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_keys.id'], name=op.f('fk_handoff_keys_api_key_id_api_keys'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('api_key_id', name=op.f('pk_handoff_keys'))
    )
    with op.batch_alter_table('handoff_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_handoff_keys_account_id'), ['account_id'], unique=False)

    op.create_table('handoff_requests',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('account_id', sa.String(length=40), nullable=True),
    sa.Column('conversation_id', sa.String(length=40), nullable=True),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('instructions', sa.Text(), nullable=False),
    sa.Column('objective', sa.Text(), nullable=False),
    sa.Column('max_minutes', sa.Integer(), nullable=False),
    sa.Column('relaxed', sa.Boolean(), nullable=False),
    sa.Column('webhook_url', sa.String(length=2000), nullable=True),
    sa.Column('has_owner_contact', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('result', sa.Text(), nullable=True),
    sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_by', sa.String(length=40), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_by', sa.String(length=40), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('webhook_status', sa.String(length=20), nullable=True),
    sa.Column('webhook_attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['handoff_accounts.id'], name=op.f('fk_handoff_requests_account_id_handoff_accounts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_handoff_requests_conversation_id_conversations'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handoff_requests'))
    )
    with op.batch_alter_table('handoff_requests', schema=None) as batch_op:
        batch_op.create_index('ix_handoff_requests_account_updated', ['account_id', 'updated_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_handoff_requests_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_handoff_requests_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_handoff_requests_status'), ['status'], unique=False)

    op.create_table('handoff_events',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('request_id', sa.String(length=40), nullable=False),
    sa.Column('action', sa.String(length=30), nullable=False),
    sa.Column('actor', sa.String(length=60), nullable=True),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['handoff_requests.id'], name=op.f('fk_handoff_events_request_id_handoff_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handoff_events'))
    )
    with op.batch_alter_table('handoff_events', schema=None) as batch_op:
        batch_op.create_index('ix_handoff_events_request_created', ['request_id', 'created_at'], unique=False)

    op.create_table('handoff_messages',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('request_id', sa.String(length=40), nullable=False),
    sa.Column('author', sa.String(length=20), nullable=False),
    sa.Column('author_id', sa.String(length=40), nullable=True),
    sa.Column('content', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['handoff_requests.id'], name=op.f('fk_handoff_messages_request_id_handoff_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_handoff_messages'))
    )
    with op.batch_alter_table('handoff_messages', schema=None) as batch_op:
        batch_op.create_index('ix_handoff_messages_request_created', ['request_id', 'created_at'], unique=False)



def downgrade():
    with op.batch_alter_table('handoff_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_handoff_messages_request_created')

    op.drop_table('handoff_messages')
    with op.batch_alter_table('handoff_events', schema=None) as batch_op:
        batch_op.drop_index('ix_handoff_events_request_created')

    op.drop_table('handoff_events')
    with op.batch_alter_table('handoff_requests', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_handoff_requests_status'))
        batch_op.drop_index(batch_op.f('ix_handoff_requests_created_at'))
        batch_op.drop_index(batch_op.f('ix_handoff_requests_conversation_id'))
        batch_op.drop_index('ix_handoff_requests_account_updated')

    op.drop_table('handoff_requests')
    with op.batch_alter_table('handoff_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_handoff_keys_account_id'))

    op.drop_table('handoff_keys')
    op.drop_table('handoff_invitations')
    with op.batch_alter_table('handoff_accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_handoff_accounts_created_at'))

    op.drop_table('handoff_accounts')
