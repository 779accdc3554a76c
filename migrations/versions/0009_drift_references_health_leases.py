"""drift references per version, the monitoring sweep's last figures per served version, and leases

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 21:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'drift_references',
        sa.Column('version_id', sa.Integer(), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=False),
        sa.Column('rows', sa.Integer(), nullable=False),
        sa.Column('profile', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('created_by', sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(['version_id'], ['versions.id'], name=op.f('fk_drift_references_version_id_versions')),
        sa.PrimaryKeyConstraint('version_id', name=op.f('pk_drift_references')),
    )
    op.create_table(
        'version_health',
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('computed_at', sa.DateTime(), nullable=False),
        sa.Column('figures', sa.JSON(), nullable=False),
        sa.Column('drifted', sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_version_health_model_id_models')),
        sa.PrimaryKeyConstraint('model_id', 'version', name=op.f('pk_version_health')),
    )
    op.create_table(
        'leases',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('holder', sa.String(length=128), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_leases')),
    )


def downgrade():
    op.drop_table('leases')
    op.drop_table('version_health')
    op.drop_table('drift_references')
