"""rollout requests: an approval request may ask for a canary (a rollout) rather than a promote, and names the rollout it started

Revision ID: 0030
Revises: 0029
Create Date: 2026-11-28 13:50:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0030'
down_revision = '0029'
branch_labels = None
depends_on = None


def upgrade():
    # A canary answers the alias's callers, so an alias that needs approvals gets them for a rollout too:
    # the request keeps the rollout asked for (its share or plan), and the rollout it started, whose later
    # steps carry its approvals. Requests opened before asked for a promote: both stay null. The columns are
    # added in place: SQLite would copy the table to add a foreign key, and approvals refer to it (the
    # rollout's id is kept as a number; rollouts are never deleted).
    op.add_column('approval_requests', sa.Column('rollout', sa.JSON(), nullable=True))
    op.add_column('approval_requests', sa.Column('rollout_id', sa.Integer(), nullable=True))


def downgrade():
    op.drop_column('approval_requests', 'rollout_id')
    op.drop_column('approval_requests', 'rollout')
