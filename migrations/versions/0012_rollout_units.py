"""rollout units: a caller's refusals apart from the arm's errors, what the gates weigh (each sticky
key's first requests, latency per batch-size class), the keys each split saw, the step's figures a
plan's gates rest on, and a drift reference's rows for the agreement gate

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-25 06:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('rollout_stats', schema=None) as batch_op:
        batch_op.add_column(sa.Column('refused', sa.BigInteger(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('weighed', sa.BigInteger(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('weighed_errors', sa.BigInteger(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('latency_by_rows', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('key_epoch', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('key_sketch', sa.Text(), nullable=True))
    with op.batch_alter_table('rollout_plans', schema=None) as batch_op:
        batch_op.add_column(sa.Column('figures', sa.JSON(), nullable=True))
    with op.batch_alter_table('drift_references', schema=None) as batch_op:
        batch_op.add_column(sa.Column('gate_rows', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('drift_references', schema=None) as batch_op:
        batch_op.drop_column('gate_rows')
    with op.batch_alter_table('rollout_plans', schema=None) as batch_op:
        batch_op.drop_column('figures')
    with op.batch_alter_table('rollout_stats', schema=None) as batch_op:
        for column in ('key_sketch', 'key_epoch', 'latency_by_rows', 'weighed_errors', 'weighed', 'refused'):
            batch_op.drop_column(column)
