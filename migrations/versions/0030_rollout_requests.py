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
    # steps carry its approvals. Requests opened before asked for a promote: both stay null.
    with op.batch_alter_table('approval_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('rollout', sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column('rollout_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_approval_requests_rollout_id_rollouts'), 'rollouts',
                                    ['rollout_id'], ['id'])


def downgrade():
    with op.batch_alter_table('approval_requests', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_approval_requests_rollout_id_rollouts'), type_='foreignkey')
        batch_op.drop_column('rollout_id')
        batch_op.drop_column('rollout')
