"""token scopes: a token may hold some of its role's rights on the models some patterns name

Revision ID: 0024
Revises: 0023
Create Date: 2026-11-25 14:40:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade():
    # Every existing token keeps its role's rights on every model (scopes null).
    op.add_column('api_tokens', sa.Column('scopes', sa.JSON(), nullable=True))


def downgrade():
    op.drop_column('api_tokens', 'scopes')  # SQLite 3.35 and later drop a column in place
