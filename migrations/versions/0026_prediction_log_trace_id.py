"""prediction log: the trace id of each logged request that was traced (OpenTelemetry)

Revision ID: 0026
Revises: 0025
Create Date: 2026-11-25 17:30:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0026'
down_revision = '0025'
branch_labels = None
depends_on = None


def upgrade():
    # Not in batch mode: on SQLite that copies the table. Rows logged before it have no trace.
    op.add_column('prediction_log', sa.Column('trace_id', sa.String(length=32), nullable=True))


def downgrade():
    op.drop_column('prediction_log', 'trace_id')  # SQLite 3.35 and later drop a column in place
