"""version framework: the library a version's model comes from (scikit-learn, xgboost, lightgbm); existing versions are scikit-learn

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-25 09:15:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('versions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('framework', sa.String(length=32), server_default='scikit-learn',
                                      nullable=False))


def downgrade():
    with op.batch_alter_table('versions', schema=None) as batch_op:
        batch_op.drop_column('framework')
