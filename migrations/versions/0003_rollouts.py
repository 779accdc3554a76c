"""rollouts: canary and shadow on an alias, their per-process figures, details on history events

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 09:40:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('promotion_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('details', sa.JSON(), nullable=True))

    op.create_table('rollouts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('alias', sa.String(length=64), nullable=False),
    sa.Column('canary_version_id', sa.Integer(), nullable=True),
    sa.Column('canary_percent', sa.Float(), nullable=True),
    sa.Column('shadow_version_id', sa.Integer(), nullable=True),
    sa.Column('shadow_percent', sa.Float(), nullable=True),
    sa.Column('sticky_header', sa.String(length=128), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('started_by', sa.String(length=128), nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=False),
    sa.Column('changed_at', sa.DateTime(), nullable=False),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['canary_version_id'], ['versions.id'], name=op.f('fk_rollouts_canary_version_id_versions')),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_rollouts_model_id_models')),
    sa.ForeignKeyConstraint(['shadow_version_id'], ['versions.id'], name=op.f('fk_rollouts_shadow_version_id_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rollouts'))
    )
    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rollouts_model_id'), ['model_id'], unique=False)

    op.create_table('rollout_stats',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rollout_id', sa.Integer(), nullable=False),
    sa.Column('process', sa.String(length=128), nullable=False),
    sa.Column('role', sa.String(length=8), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('requests', sa.BigInteger(), nullable=False),
    sa.Column('errors', sa.BigInteger(), nullable=False),
    sa.Column('latency_buckets', sa.JSON(), nullable=False),
    sa.Column('compared', sa.BigInteger(), nullable=False),
    sa.Column('dropped', sa.BigInteger(), nullable=False),
    sa.Column('rows', sa.BigInteger(), nullable=False),
    sa.Column('agreed', sa.BigInteger(), nullable=False),
    sa.Column('abs_diff_sum', sa.Float(), nullable=False),
    sa.Column('abs_diff_max', sa.Float(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['rollout_id'], ['rollouts.id'], name=op.f('fk_rollout_stats_rollout_id_rollouts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rollout_stats')),
    sa.UniqueConstraint('rollout_id', 'process', 'role', 'version', name='uq_rollout_stats_rollout_id')
    )


def downgrade():
    op.drop_table('rollout_stats')
    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rollouts_model_id'))

    op.drop_table('rollouts')
    with op.batch_alter_table('promotion_events', schema=None) as batch_op:
        batch_op.drop_column('details')
