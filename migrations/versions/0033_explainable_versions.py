"""explainable versions: whether a version's rows can be explained, why not, and what one row costs

Revision ID: 0033
Revises: 0032
Create Date: 2026-11-28 17:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0033'
down_revision = '0032'
branch_labels = None
depends_on = None


def upgrade():
    # Nullable, and null for versions uploaded before: their upload did not measure it (asked to explain, they are
    # judged when loaded, as every version is).
    # Added in place, as 0031's columns (no copy of the table, which others refer to).
    op.add_column('versions', sa.Column('explainable', sa.Boolean(), nullable=True))
    op.add_column('versions', sa.Column('explainable_reason', sa.Text(), nullable=True))
    op.add_column('versions', sa.Column('explain_row_cost', sa.BigInteger(), nullable=True))


def downgrade():
    for column in ('explain_row_cost', 'explainable_reason', 'explainable'):
        op.drop_column('versions', column)
