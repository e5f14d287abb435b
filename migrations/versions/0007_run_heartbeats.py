"""worker heartbeats and periodic claims: run liveness and the scheduler tick live in the database

Reviewed: two new tables, nothing existing changes. Sync and evaluation runs already have heartbeat_at.

Revision ID: 0007_run_heartbeats
Revises: 0006_shared_state
Create Date: 2026-12-07 10:45:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0007_run_heartbeats'
down_revision = '0006_shared_state'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('worker_heartbeats',
    sa.Column('id', sa.String(length=200), nullable=False),
    sa.Column('hostname', sa.String(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_worker_heartbeats'))
    )
    with op.batch_alter_table('worker_heartbeats', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_worker_heartbeats_heartbeat_at'), ['heartbeat_at'], unique=False)

    op.create_table('periodic_claims',
    sa.Column('name', sa.String(length=60), nullable=False),
    sa.Column('period', sa.String(length=40), nullable=False),
    sa.Column('claimed_by', sa.String(length=200), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_periodic_claims'))
    )


def downgrade():
    op.drop_table('periodic_claims')
    with op.batch_alter_table('worker_heartbeats', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_worker_heartbeats_heartbeat_at'))

    op.drop_table('worker_heartbeats')
