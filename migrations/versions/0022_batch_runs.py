"""batch runs: scoring jobs run outside the server (Spark, Dask, the CLI), recorded against the version that scored them

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-25 11:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'batch_runs',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version_id', sa.Integer(), nullable=False),
        sa.Column('alias', sa.String(length=64), nullable=True),
        sa.Column('engine', sa.String(length=16), nullable=False),
        sa.Column('inputs', sa.JSON(), nullable=False),
        sa.Column('outputs', sa.JSON(), nullable=False),
        sa.Column('rows', sa.BigInteger(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('detail', sa.Text(), nullable=False),
        sa.Column('started_at', sa.DateTime(), nullable=False),
        sa.Column('finished_at', sa.DateTime(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('created_by', sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(['version_id'], ['versions.id'], name=op.f('fk_batch_runs_version_id_versions')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_batch_runs')),
    )
    with op.batch_alter_table('batch_runs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_batch_runs_version_id'), ['version_id'], unique=False)


def downgrade():
    with op.batch_alter_table('batch_runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_batch_runs_version_id'))
    op.drop_table('batch_runs')
