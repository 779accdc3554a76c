"""rollout plans (steps, gates, progress); rollouts that mirror canary requests; squared differences

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-23 22:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade():
    # Not in batch mode: on SQLite that copies the table, and other tables refer to rollouts.
    op.add_column('rollouts', sa.Column('mirror', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column('rollout_stats', sa.Column('abs_diff_sq_sum', sa.Float(), nullable=False, server_default=sa.text('0')))
    op.create_table(
        'rollout_plans',
        sa.Column('rollout_id', sa.Integer(), nullable=False),
        sa.Column('steps', sa.JSON(), nullable=False),
        sa.Column('gates', sa.JSON(), nullable=False),
        sa.Column('on_success', sa.String(length=16), nullable=False),
        sa.Column('step', sa.Integer(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('detail', sa.Text(), nullable=False),
        sa.Column('step_started_at', sa.DateTime(), nullable=False),
        sa.Column('baseline', sa.JSON(), nullable=False),
        sa.Column('looks', sa.JSON(), nullable=False),
        sa.Column('verdicts', sa.JSON(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id'], name=op.f('fk_rollout_plans_rollout_id_rollouts')),
        sa.PrimaryKeyConstraint('rollout_id', name=op.f('pk_rollout_plans')),
    )


def downgrade():
    op.drop_table('rollout_plans')
    op.drop_column('rollout_stats', 'abs_diff_sq_sum')  # SQLite 3.35 and later drop a column in place
    op.drop_column('rollouts', 'mirror')
