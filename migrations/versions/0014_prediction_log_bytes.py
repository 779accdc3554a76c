"""prediction log bounded by bytes: each row's size, each model's own cap; SQLite files that give pruned pages back

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-25 08:45:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None

INCREMENTAL = 2  # PRAGMA auto_vacuum's value for incremental


def upgrade():
    # Not in batch mode: on SQLite that copies the table, and versions and events refer to it.
    op.add_column('models', sa.Column('prediction_log_max_mb', sa.Float(), nullable=True))
    op.add_column('prediction_log', sa.Column('bytes', sa.Integer(), server_default='0', nullable=False))
    text = 'CAST(inputs AS TEXT)' if op.get_bind().dialect.name == 'postgresql' else 'inputs'
    out = 'CAST(outputs AS TEXT)' if op.get_bind().dialect.name == 'postgresql' else 'outputs'
    # The same measure the writer uses (registry/monitoring/log_bounds.py: row_bytes).
    op.execute(
        f"UPDATE prediction_log SET bytes = 64 + COALESCE(LENGTH({text}), 0) + COALESCE(LENGTH({out}), 0) "
        "+ LENGTH(request_id) + COALESCE(LENGTH(alias), 0) + COALESCE(LENGTH(route), 0)"
    )
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite' and bind.exec_driver_sql('PRAGMA auto_vacuum').scalar() != INCREMENTAL:
        # A database made before this revision keeps pruned pages for ever unless it is rebuilt once
        # with auto_vacuum set (a new one has it set before its first table: registry/db.py).
        with op.get_context().autocommit_block():
            bind.exec_driver_sql('PRAGMA auto_vacuum=INCREMENTAL')
            bind.exec_driver_sql('VACUUM')


def downgrade():
    op.drop_column('prediction_log', 'bytes')  # SQLite 3.35 and later drop a column in place
    op.drop_column('models', 'prediction_log_max_mb')
