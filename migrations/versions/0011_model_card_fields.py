"""model card: a version's intended use and limitations, free text beside its description

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-24 01:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('intended_use', sa.Text(), server_default='', nullable=False))
        batch_op.add_column(sa.Column('limitations', sa.Text(), server_default='', nullable=False))


def downgrade():
    with op.batch_alter_table('versions', schema=None) as batch_op:
        batch_op.drop_column('limitations')
        batch_op.drop_column('intended_use')
