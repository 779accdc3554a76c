"""token owners: a token belongs to a person, and approvals count people (owners), not tokens

Revision ID: 0031
Revises: 0030
Create Date: 2026-11-28 14:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0031'
down_revision = '0030'
branch_labels = None
depends_on = None


def upgrade():
    # Tokens made before this belong to a person of their own name; a request's requester and an approval's
    # approver likewise, so what was approved before counts as it did. The columns are added in place with an
    # empty default (no copy of the tables, which others refer to), then filled; the code always names one.
    for table, column, source in (('api_tokens', 'owner', 'name'), ('approval_requests', 'requester_owner', 'requested_by'),
                                  ('approvals', 'owner', 'approver')):
        op.add_column(table, sa.Column(column, sa.String(length=255), server_default='', nullable=False))
        op.execute(f"UPDATE {table} SET {column} = {source}")
    op.create_index(op.f('uq_approvals_request_id_owner'), 'approvals', ['request_id', 'owner'], unique=True)


def downgrade():
    op.drop_index(op.f('uq_approvals_request_id_owner'), table_name='approvals')
    for table, column in (('approvals', 'owner'), ('approval_requests', 'requester_owner'), ('api_tokens', 'owner')):
        op.drop_column(table, column)
