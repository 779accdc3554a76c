"""prediction log export: each model's high-water mark in the lake; ids of the log never handed out twice on SQLite; a label counts in its row's bytes

Revision ID: 0020
Revises: 0019
Create Date: 2026-11-25 11:15:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade():
    op.create_table(
        'prediction_log_exports',
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('exported_id', ROW_ID, nullable=False),
        sa.Column('pending_id', ROW_ID, nullable=True),
        sa.Column('rows', sa.BigInteger(), nullable=False),
        sa.Column('before', sa.DateTime(), nullable=True),
        sa.Column('exported_at', sa.DateTime(), nullable=True),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('failed_at', sa.DateTime(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_prediction_log_exports_model_id_models')),
        sa.PrimaryKeyConstraint('model_id', name=op.f('pk_prediction_log_exports')),
    )
    # A label counts in its row's size from now on (registry/monitoring/log_bounds.py: label_bytes).
    op.execute("UPDATE prediction_log SET bytes = bytes + LENGTH(CAST(label AS TEXT)) WHERE label IS NOT NULL")
    if op.get_bind().dialect.name == 'sqlite':
        # An INTEGER PRIMARY KEY is given the largest id + 1: once every row was pruned, ids would start
        # again below the export's marks. AUTOINCREMENT never gives an id twice; the table is copied once
        # (it is bounded by PREDICTION_LOG_MAX_MB), and its sequence starts past the largest id copied.
        with op.batch_alter_table('prediction_log', recreate='always',
                                  table_kwargs={'sqlite_autoincrement': True}) as batch_op:
            batch_op.alter_column('id', existing_type=sa.Integer(), autoincrement=True)


def downgrade():
    op.drop_table('prediction_log_exports')
    op.execute("UPDATE prediction_log SET bytes = bytes - LENGTH(CAST(label AS TEXT)) WHERE label IS NOT NULL")
    # prediction_log keeps AUTOINCREMENT on SQLite: ids that never repeat suit every earlier revision too.
