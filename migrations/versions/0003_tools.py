"""rag tools, retrieval tools, traces

Revision ID: 0003_tools
Revises: 0002_knowledge
Create Date: 2026-11-23 14:35:32.097006

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0003_tools"
down_revision = "0002_knowledge"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('traces',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('entity_type', sa.String(length=40), nullable=False),
    sa.Column('entity_id', sa.String(length=40), nullable=False),
    sa.Column('api_key_id', sa.String(length=40), nullable=True),
    sa.Column('query', sa.Text(), nullable=False),
    sa.Column('spans', sa.JSON(), nullable=False),
    sa.Column('total_ms', sa.Double(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_traces'))
    )
    with op.batch_alter_table('traces', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_traces_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_traces_entity_id'), ['entity_id'], unique=False)

    op.create_table('rag_tools',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('prompt_template_id', sa.String(length=40), nullable=True),
    sa.Column('model_id', sa.String(length=40), nullable=True),
    sa.Column('answer_mode', sa.String(length=20), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('knowledge_source_ids', sa.JSON(), nullable=False),
    sa.Column('embedding_model_id', sa.String(length=40), nullable=False),
    sa.Column('chunker', sa.String(length=20), nullable=False),
    sa.Column('chunk_size', sa.Integer(), nullable=False),
    sa.Column('chunk_overlap', sa.Integer(), nullable=False),
    sa.Column('retrieval', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['embedding_model_id'], ['llm_models.id'], name=op.f('fk_rag_tools_embedding_model_id_llm_models'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['model_id'], ['llm_models.id'], name=op.f('fk_rag_tools_model_id_llm_models'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['prompt_template_id'], ['prompt_templates.id'], name=op.f('fk_rag_tools_prompt_template_id_prompt_templates'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rag_tools')),
    sa.UniqueConstraint('name', name=op.f('uq_rag_tools_name'))
    )
    with op.batch_alter_table('rag_tools', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rag_tools_created_at'), ['created_at'], unique=False)

    op.create_table('retrieval_tools',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('knowledge_source_ids', sa.JSON(), nullable=False),
    sa.Column('embedding_model_id', sa.String(length=40), nullable=False),
    sa.Column('chunker', sa.String(length=20), nullable=False),
    sa.Column('chunk_size', sa.Integer(), nullable=False),
    sa.Column('chunk_overlap', sa.Integer(), nullable=False),
    sa.Column('retrieval', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['embedding_model_id'], ['llm_models.id'], name=op.f('fk_retrieval_tools_embedding_model_id_llm_models'), ondelete='RESTRICT'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_retrieval_tools')),
    sa.UniqueConstraint('name', name=op.f('uq_retrieval_tools_name'))
    )
    with op.batch_alter_table('retrieval_tools', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_retrieval_tools_created_at'), ['created_at'], unique=False)



def downgrade():
    with op.batch_alter_table('retrieval_tools', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_retrieval_tools_created_at'))

    op.drop_table('retrieval_tools')
    with op.batch_alter_table('rag_tools', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rag_tools_created_at'))

    op.drop_table('rag_tools')
    with op.batch_alter_table('traces', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_traces_entity_id'))
        batch_op.drop_index(batch_op.f('ix_traces_created_at'))

    op.drop_table('traces')
