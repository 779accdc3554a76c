"""prediction log: whether a rollout's gates weigh each logged answer (one sticky key's flood past its share does not)

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-25 14:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade():
    # Not in batch mode: on SQLite that copies the table. Rows logged before weighed, as the gates did then.
    op.add_column('prediction_log', sa.Column('weighed', sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade():
    op.drop_column('prediction_log', 'weighed')  # SQLite 3.35 and later drop a column in place
