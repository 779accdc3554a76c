"""requester groups: the groups of a signed-in person who asked for an approval, which let them move the alias

Revision ID: 0029
Revises: 0028
Create Date: 2026-11-25 21:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0029'
down_revision = '0028'
branch_labels = None
depends_on = None


def upgrade():
    # The last approval moves the alias for the requester: a person whom the policy lets move it through
    # one of their groups (movers.groups) needs those groups then. Requests opened before carry none.
    with op.batch_alter_table('approval_requests', schema=None) as batch_op:
        batch_op.add_column(sa.Column('requester_groups', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('approval_requests', schema=None) as batch_op:
        batch_op.drop_column('requester_groups')
