"""evaluations table; promotion events may record a deleted alias (to_version null)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 09:50:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('evaluations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('version_id', sa.Integer(), nullable=False),
    sa.Column('dataset_name', sa.String(length=255), nullable=False),
    sa.Column('dataset_sha256', sa.String(length=64), nullable=False),
    sa.Column('rows', sa.BigInteger(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('created_by', sa.String(length=128), nullable=False),
    sa.ForeignKeyConstraint(['version_id'], ['versions.id'], name=op.f('fk_evaluations_version_id_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_evaluations'))
    )
    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_evaluations_dataset_sha256'), ['dataset_sha256'], unique=False)
        batch_op.create_index(batch_op.f('ix_evaluations_version_id'), ['version_id'], unique=False)

    with op.batch_alter_table('promotion_events', schema=None) as batch_op:
        batch_op.alter_column('to_version', existing_type=sa.Integer(), nullable=True)


def downgrade():
    # A deleted alias has no target to restore; its events cannot survive the older schema.
    op.execute("DELETE FROM promotion_events WHERE to_version IS NULL")
    with op.batch_alter_table('promotion_events', schema=None) as batch_op:
        batch_op.alter_column('to_version', existing_type=sa.Integer(), nullable=False)

    with op.batch_alter_table('evaluations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_evaluations_version_id'))
        batch_op.drop_index(batch_op.f('ix_evaluations_dataset_sha256'))

    op.drop_table('evaluations')
