"""ledger token entries: the history's chain also holds token changes (creations with their scopes, revocations), which belong to no model or alias

Revision ID: 0025
Revises: 0024
Create Date: 2026-11-25 14:50:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade():
    # Batch mode copies the table on SQLite: every row keeps its values, so every hash still holds.
    with op.batch_alter_table('promotion_events', schema=None) as batch_op:
        batch_op.alter_column('model_id', existing_type=sa.Integer(), nullable=True)
        batch_op.alter_column('alias', existing_type=sa.String(length=64), nullable=True)


def downgrade():
    # Token entries name no model, and removing one would break the chain of every entry after it.
    held = op.get_bind().execute(sa.text("SELECT COUNT(*) FROM promotion_events WHERE model_id IS NULL")).scalar()
    if held:
        raise RuntimeError(f"the ledger holds {held} token entries: 0024's schema cannot hold them, and removing "
                           "them would break the chain; export the ledger (flask audit export) and restore a backup")
    with op.batch_alter_table('promotion_events', schema=None) as batch_op:
        batch_op.alter_column('alias', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('model_id', existing_type=sa.Integer(), nullable=False)
