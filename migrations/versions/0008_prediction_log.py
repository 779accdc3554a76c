"""prediction log: sampled requests with their inputs, outputs, latency, status and label; each model's share

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 19:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    # Not in batch mode: on SQLite that copies the table, and versions and events refer to it.
    op.add_column('models', sa.Column('prediction_log_sample', sa.Float(), nullable=True))
    op.create_table(
        'prediction_log',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('model_id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('request_id', sa.String(length=128), nullable=False),
        sa.Column('alias', sa.String(length=64), nullable=True),
        sa.Column('route', sa.String(length=16), nullable=True),
        sa.Column('inputs', sa.JSON(), nullable=True),
        sa.Column('outputs', sa.JSON(), nullable=True),
        sa.Column('latency_ms', sa.Float(), nullable=False),
        sa.Column('status', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('label', sa.JSON(), nullable=True),
        sa.Column('labelled_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['model_id'], ['models.id'], name=op.f('fk_prediction_log_model_id_models')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_prediction_log')),
    )
    with op.batch_alter_table('prediction_log', schema=None) as batch_op:
        batch_op.create_index('ix_prediction_log_at', ['at'], unique=False)
        batch_op.create_index('ix_prediction_log_model_id_at', ['model_id', 'at'], unique=False)
        batch_op.create_index('ix_prediction_log_model_id_request_id', ['model_id', 'request_id'], unique=False)


def downgrade():
    with op.batch_alter_table('prediction_log', schema=None) as batch_op:
        batch_op.drop_index('ix_prediction_log_model_id_request_id')
        batch_op.drop_index('ix_prediction_log_model_id_at')
        batch_op.drop_index('ix_prediction_log_at')
    op.drop_table('prediction_log')
    op.drop_column('models', 'prediction_log_sample')  # SQLite 3.35 and later drop a column in place
