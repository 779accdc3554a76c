"""logged explanations: a model's share of logged answers explained, and the explanations kept with the logged row

Revision ID: 0027
Revises: 0026
Create Date: 2026-11-26 10:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0027'
down_revision = '0026'
branch_labels = None
depends_on = None


def upgrade():
    # Not in batch mode: on SQLite that copies the tables. Nullable columns: every existing row stays as it was
    # (a model explains none of its answers, a logged row has no explanations).
    op.add_column('models', sa.Column('prediction_log_explain', sa.Float(), nullable=True))
    op.add_column('prediction_log', sa.Column('explanations', sa.JSON(), nullable=True))


def downgrade():
    # SQLite 3.35 and later drop a column in place. The explanations' bytes stay counted in each row's
    # size until it is pruned: the bound errs on the side of holding less.
    op.drop_column('prediction_log', 'explanations')
    op.drop_column('models', 'prediction_log_explain')
