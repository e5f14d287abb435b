"""shared state: uploaded bytes in the database (blobs, source_uploads); the shared embedding cache

Reviewed: uploads were files in the data dir of the web node that received them; now the bytes are
content-addressed blobs (bytea on PostgreSQL, BLOB on SQLite) and each file source names its uploads.
An upload goes with its source (CASCADE); a blob cannot be deleted while an upload names it (RESTRICT),
which is what makes garbage collection safe against a concurrent upload of the same bytes.
The files already on disk are not read here: every node imports its own data dir's uploads when
`magnet serve` or `magnet worker` starts, and a file source's sync imports them first (see
app/services/legacy_uploads.py), because several nodes may each hold some of them.
embedding_cache is knowledge.embedders.sql_cache's table: the embedding cache every node shares when the
database is PostgreSQL (it starts empty: the per-node SQLite cache files are not imported, they only
save time).

Revision ID: 0006_shared_state
Revises: 0005_conversations
Create Date: 2026-12-07 11:00:00.000000

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0006_shared_state'
down_revision = '0005_conversations'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('blobs',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('sha256', name=op.f('pk_blobs'))
    )
    op.create_table('source_uploads',
    sa.Column('source_id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('blob_sha256', sa.String(length=64), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('uploaded_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['blob_sha256'], ['blobs.sha256'], name=op.f('fk_source_uploads_blob_sha256_blobs'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['source_id'], ['knowledge_sources.id'], name=op.f('fk_source_uploads_source_id_knowledge_sources'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('source_id', 'name', name=op.f('pk_source_uploads'))
    )
    with op.batch_alter_table('source_uploads', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_source_uploads_blob_sha256'), ['blob_sha256'], unique=False)

    op.create_table('embedding_cache',
    sa.Column('model', sa.String(length=300), nullable=False),
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('dim', sa.Integer(), nullable=False),
    sa.Column('vector', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('model', 'hash', name=op.f('pk_embedding_cache'))
    )


def downgrade():
    op.drop_table('embedding_cache')
    with op.batch_alter_table('source_uploads', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_source_uploads_blob_sha256'))

    op.drop_table('source_uploads')
    op.drop_table('blobs')
