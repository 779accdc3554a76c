"""approval policies: each approval names the policy it was given under (the id of its policy_set history entry)

Revision ID: 0032
Revises: 0031
Create Date: 2026-11-28 17:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0032'
down_revision = '0031'
branch_labels = None
depends_on = None


def upgrade():
    # An approval given before this was given under the policy its alias had then: the latest policy_set
    # entry of the alias at or before the approval's time (none: it is shown, and counts no more).
    op.add_column('approvals', sa.Column('policy_entry', sa.Integer(), nullable=True))
    op.execute(
        "UPDATE approvals SET policy_entry = (SELECT max(e.id) FROM promotion_events e, approval_requests r "
        "WHERE r.id = approvals.request_id AND e.model_id = r.model_id AND e.alias = r.alias "
        "AND e.action = 'policy_set' AND e.at <= approvals.at)"
    )


def downgrade():
    op.drop_column('approvals', 'policy_entry')
