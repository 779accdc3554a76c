"""artifact checks: what the artifact scrub last found of the store's copy of each artifact it checks

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-25 07:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'artifact_checks',
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('checked_at', sa.DateTime(), nullable=False),
        sa.Column('bad_since', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('sha256', name=op.f('pk_artifact_checks')),
    )


def downgrade():
    op.drop_table('artifact_checks')
