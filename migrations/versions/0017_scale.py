"""documents (source_id, created_at, id) index for the documents list's default order and its cursor pages

Reviewed: a new index only; nothing is rewritten. On a large documents table PostgreSQL builds it under a
SHARE lock (writes wait while it builds: seconds for 400k rows, measured by bench/scale.py).

Revision ID: 0017_scale
Revises: 0010_documents
Create Date: 2026-12-07 14:30:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0017_scale'
down_revision = '0016_users'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.create_index('ix_documents_source_created', ['source_id', 'created_at', 'id'], unique=False)


def downgrade():
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_index('ix_documents_source_created')
