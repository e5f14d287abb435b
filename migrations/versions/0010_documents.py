"""documents.status wide enough for indexed_with_warnings; sync_runs.timings

Reviewed: widening a VARCHAR keeps every value; timings is nullable (older runs have none).

Revision ID: 0010_documents
Revises: 0007_run_heartbeats
Create Date: 2026-12-07 11:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0010_documents'
down_revision = '0007_run_heartbeats'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.alter_column('status', existing_type=sa.String(length=20), type_=sa.String(length=30),
                              existing_nullable=False)
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('timings', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('sync_runs', schema=None) as batch_op:
        batch_op.drop_column('timings')
    op.execute("UPDATE documents SET status = 'indexed' WHERE status = 'indexed_with_warnings'")
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.alter_column('status', existing_type=sa.String(length=30), type_=sa.String(length=20),
                              existing_nullable=False)
