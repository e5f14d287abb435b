"""knowledge sources, documents, indexes, sync runs

Reviewed by hand: uq_sync_runs_one_active is a partial unique index (SQLite and PostgreSQL both support
them) so that two syncs of one source can never be active at once, whatever the race.

Revision ID: 0002_knowledge
Revises: 0001_foundation
Create Date: 2026-11-23 13:44:19.142039

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = "0002_knowledge"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('knowledge_sources',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('type', sa.String(length=20), nullable=False),
    sa.Column('configuration', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('schedule', sa.JSON(), nullable=True),
    sa.Column('next_sync_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_sync', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_sync_id', sa.String(length=40), nullable=True),
    sa.Column('last_sync_status', sa.String(length=30), nullable=True),
    sa.Column('resync_requested', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_knowledge_sources')),
    sa.UniqueConstraint('name', name=op.f('uq_knowledge_sources_name'))
    )
    with op.batch_alter_table('knowledge_sources', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_knowledge_sources_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_knowledge_sources_next_sync_at'), ['next_sync_at'], unique=False)

    op.create_table('documents',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('source_id', sa.String(length=40), nullable=False),
    sa.Column('external_id', sa.String(length=2000), nullable=False),
    sa.Column('name', sa.String(length=500), nullable=False),
    sa.Column('mime_type', sa.String(length=200), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('content_hash', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('error_code', sa.String(length=40), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('title', sa.String(length=1000), nullable=True),
    sa.Column('page_count', sa.Integer(), nullable=True),
    sa.Column('chunk_count', sa.Integer(), nullable=False),
    sa.Column('sections', sa.JSON(), nullable=False),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('last_synced_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['source_id'], ['knowledge_sources.id'], name=op.f('fk_documents_source_id_knowledge_sources'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_documents')),
    sa.UniqueConstraint('source_id', 'external_id', name='uq_documents_source_external')
    )
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_documents_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_documents_source_id'), ['source_id'], unique=False)

    op.create_table('knowledge_indexes',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('source_id', sa.String(length=40), nullable=False),
    sa.Column('embedding_model_id', sa.String(length=40), nullable=False),
    sa.Column('chunker', sa.String(length=20), nullable=False),
    sa.Column('chunk_size', sa.Integer(), nullable=False),
    sa.Column('chunk_overlap', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=20), nullable=False),
    sa.Column('documents_done', sa.Integer(), nullable=False),
    sa.Column('documents_total', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['embedding_model_id'], ['llm_models.id'], name=op.f('fk_knowledge_indexes_embedding_model_id_llm_models'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['source_id'], ['knowledge_sources.id'], name=op.f('fk_knowledge_indexes_source_id_knowledge_sources'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_knowledge_indexes')),
    sa.UniqueConstraint('source_id', 'embedding_model_id', 'chunker', 'chunk_size', 'chunk_overlap', name='uq_knowledge_indexes_settings')
    )
    with op.batch_alter_table('knowledge_indexes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_knowledge_indexes_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_knowledge_indexes_embedding_model_id'), ['embedding_model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_knowledge_indexes_source_id'), ['source_id'], unique=False)

    op.create_table('sync_runs',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('source_id', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=30), nullable=False),
    sa.Column('trigger', sa.String(length=20), nullable=False),
    sa.Column('documents_total', sa.Integer(), nullable=True),
    sa.Column('documents_done', sa.Integer(), nullable=False),
    sa.Column('added', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('unchanged', sa.Integer(), nullable=False),
    sa.Column('deleted', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('errors', sa.JSON(), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('cancel_requested', sa.Boolean(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['source_id'], ['knowledge_sources.id'], name=op.f('fk_sync_runs_source_id_knowledge_sources'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sync_runs'))
    )
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sync_runs_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_sync_runs_source_id'), ['source_id'], unique=False)
        batch_op.create_index('uq_sync_runs_one_active', ['source_id'], unique=True, sqlite_where=sa.text("status IN ('queued', 'running')"), postgresql_where=sa.text("status IN ('queued', 'running')"))

    op.create_table('indexed_documents',
    sa.Column('index_id', sa.String(length=40), nullable=False),
    sa.Column('document_id', sa.String(length=40), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('chunk_count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['document_id'], ['documents.id'], name=op.f('fk_indexed_documents_document_id_documents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['index_id'], ['knowledge_indexes.id'], name=op.f('fk_indexed_documents_index_id_knowledge_indexes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('index_id', 'document_id', name=op.f('pk_indexed_documents'))
    )
    with op.batch_alter_table('indexed_documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_indexed_documents_document_id'), ['document_id'], unique=False)



def downgrade():
    with op.batch_alter_table('indexed_documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_indexed_documents_document_id'))

    op.drop_table('indexed_documents')
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_index('uq_sync_runs_one_active', sqlite_where=sa.text("status IN ('queued', 'running')"), postgresql_where=sa.text("status IN ('queued', 'running')"))
        batch_op.drop_index(batch_op.f('ix_sync_runs_source_id'))
        batch_op.drop_index(batch_op.f('ix_sync_runs_created_at'))

    op.drop_table('sync_runs')
    with op.batch_alter_table('knowledge_indexes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_knowledge_indexes_source_id'))
        batch_op.drop_index(batch_op.f('ix_knowledge_indexes_embedding_model_id'))
        batch_op.drop_index(batch_op.f('ix_knowledge_indexes_created_at'))

    op.drop_table('knowledge_indexes')
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_documents_source_id'))
        batch_op.drop_index(batch_op.f('ix_documents_created_at'))

    op.drop_table('documents')
    with op.batch_alter_table('knowledge_sources', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_knowledge_sources_next_sync_at'))
        batch_op.drop_index(batch_op.f('ix_knowledge_sources_created_at'))

    op.drop_table('knowledge_sources')
