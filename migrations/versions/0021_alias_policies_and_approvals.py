"""alias policies and approvals: protected aliases' rules, requests to move them, and the approvals they gather

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-25 11:10:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'alias_policies',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('alias', sa.String(length=64), nullable=False),
        sa.Column('document', sa.JSON(), nullable=False),
        sa.Column('updated_by', sa.String(length=128), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_alias_policies_model_id_models')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_alias_policies')),
        sa.UniqueConstraint('model_id', 'alias', name='uq_alias_policies_model_id_alias'),
    )
    op.create_index(op.f('ix_alias_policies_model_id'), 'alias_policies', ['model_id'], unique=False)
    op.create_table(
        'approval_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('alias', sa.String(length=64), nullable=False),
        sa.Column('version_id', sa.Integer(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('requested_by', sa.String(length=128), nullable=False),
        sa.Column('requester_role', sa.String(length=16), nullable=False),
        sa.Column('opened_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.Column('closed_at', sa.DateTime(), nullable=True),
        sa.Column('closed_by', sa.String(length=128), nullable=True),
        sa.Column('close_reason', sa.Text(), nullable=False),
        sa.Column('event_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_approval_requests_model_id_models')),
        sa.ForeignKeyConstraint(['version_id'], ['versions.id'], name=op.f('fk_approval_requests_version_id_versions')),
        sa.ForeignKeyConstraint(['event_id'], ['promotion_events.id'],
                                name=op.f('fk_approval_requests_event_id_promotion_events')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_approval_requests')),
    )
    op.create_index(op.f('ix_approval_requests_model_id'), 'approval_requests', ['model_id'], unique=False)
    op.create_table(
        'approvals',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('request_id', sa.Integer(), nullable=False),
        sa.Column('approver', sa.String(length=128), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['request_id'], ['approval_requests.id'],
                                name=op.f('fk_approvals_request_id_approval_requests')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_approvals')),
        sa.UniqueConstraint('request_id', 'approver', name='uq_approvals_request_id_approver'),
    )
    op.create_index(op.f('ix_approvals_request_id'), 'approvals', ['request_id'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_approvals_request_id'), table_name='approvals')
    op.drop_table('approvals')
    op.drop_index(op.f('ix_approval_requests_model_id'), table_name='approval_requests')
    op.drop_table('approval_requests')
    op.drop_index(op.f('ix_alias_policies_model_id'), table_name='alias_policies')
    op.drop_table('alias_policies')
