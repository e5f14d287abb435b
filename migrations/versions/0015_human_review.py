"""Human review of evaluation runs (review items and their grade history) and feedback on messages

Reviewed: three new tables, nothing existing changes; the unique indexes make review items idempotent per
run and case, and feedback one per message per key.

Revision ID: 0015_human_review
Revises: 0010_documents
Create Date: 2026-12-07 14:20:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0015_human_review'
down_revision = '0010_documents'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('eval_review_items',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('evaluation_id', sa.String(length=40), nullable=False),
    sa.Column('run_id', sa.String(length=40), nullable=False),
    sa.Column('case_id', sa.String(length=40), nullable=False),
    sa.Column('ordinal', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('claimed_by', sa.String(length=40), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('verdict', sa.String(length=10), nullable=True),
    sa.Column('score', sa.Integer(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('graded_by', sa.String(length=40), nullable=True),
    sa.Column('graded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['evaluation_id'], ['evaluations.id'], name=op.f('fk_eval_review_items_evaluation_id_evaluations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['run_id'], ['evaluation_runs.id'], name=op.f('fk_eval_review_items_run_id_evaluation_runs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_eval_review_items'))
    )
    with op.batch_alter_table('eval_review_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_eval_review_items_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_eval_review_items_evaluation_id'), ['evaluation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_eval_review_items_status'), ['status'], unique=False)
        batch_op.create_index('uq_eval_review_items_run_case', ['run_id', 'case_id'], unique=True)

    op.create_table('eval_review_grades',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('item_id', sa.String(length=40), nullable=False),
    sa.Column('verdict', sa.String(length=10), nullable=True),
    sa.Column('score', sa.Integer(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('graded_by', sa.String(length=40), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['item_id'], ['eval_review_items.id'], name=op.f('fk_eval_review_grades_item_id_eval_review_items'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_eval_review_grades'))
    )
    with op.batch_alter_table('eval_review_grades', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_eval_review_grades_item_id'), ['item_id'], unique=False)

    op.create_table('message_feedback',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('message_id', sa.String(length=40), nullable=False),
    sa.Column('conversation_id', sa.String(length=40), nullable=False),
    sa.Column('rater', sa.String(length=40), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('rating', sa.String(length=10), nullable=False),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('comment_is_correction', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], name=op.f('fk_message_feedback_conversation_id_conversations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_message_feedback_message_id_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_feedback'))
    )
    with op.batch_alter_table('message_feedback', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_message_feedback_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_message_feedback_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_message_feedback_rating'), ['rating'], unique=False)
        batch_op.create_index('uq_message_feedback_message_rater', ['message_id', 'rater'], unique=True)


def downgrade():
    op.drop_table('message_feedback')
    op.drop_table('eval_review_grades')
    op.drop_table('eval_review_items')
