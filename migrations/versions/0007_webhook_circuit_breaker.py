"""webhook circuit breaker: failed attempts in a row per subscription, and a pause

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-23 09:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('webhook_subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failures_in_a_row', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('paused_until', sa.DateTime(), nullable=True))


def downgrade():
    with op.batch_alter_table('webhook_subscriptions', schema=None) as batch_op:
        batch_op.drop_column('paused_until')
        batch_op.drop_column('failures_in_a_row')
