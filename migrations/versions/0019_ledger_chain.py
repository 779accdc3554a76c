"""ledger chain: every history entry carries the sha256 of the one before it; existing entries are chained in id order

Revision ID: 0019
Revises: 0015
Create Date: 2026-11-25 11:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

from registry.ledger import GENESIS, HEAD_ID, entry_hash, fields_of

# revision identifiers, used by Alembic.
revision = '0019'
down_revision = '0015'
branch_labels = None
depends_on = None

ENTRIES = sa.table(
    'promotion_events',
    sa.column('id', sa.Integer), sa.column('at', sa.DateTime), sa.column('model_id', sa.Integer),
    sa.column('alias', sa.String), sa.column('action', sa.String), sa.column('from_version', sa.Integer),
    sa.column('to_version', sa.Integer), sa.column('reverts_event_id', sa.Integer), sa.column('actor', sa.String),
    sa.column('reason', sa.Text), sa.column('forced', sa.Boolean), sa.column('details', sa.JSON),
    sa.column('prev_hash', sa.String), sa.column('hash', sa.String),
)


class _Row:
    """A history row read here, with the prev_hash it is about to get."""

    def __init__(self, row, prev_hash: str):
        self.__dict__.update(row._mapping, prev_hash=prev_hash)


def upgrade():
    head = op.create_table(
        'ledger_head',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('entries', sa.BigInteger(), nullable=False),
        sa.Column('last_id', sa.Integer(), nullable=True),
        sa.Column('hash', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_head')),
    )
    with op.batch_alter_table('promotion_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prev_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('hash', sa.String(length=64), nullable=True))

    connection = op.get_bind()
    columns = [c for c in ENTRIES.c if c.name not in ('prev_hash', 'hash')]
    rows = connection.execute(sa.select(*columns).order_by(ENTRIES.c.id)).all()
    previous, last_id = GENESIS, None
    for row in rows:
        digest = entry_hash(fields_of(_Row(row, previous)))
        connection.execute(ENTRIES.update().where(ENTRIES.c.id == row.id).values(prev_hash=previous, hash=digest))
        previous, last_id = digest, row.id
    op.bulk_insert(head, [{'id': HEAD_ID, 'entries': len(rows), 'last_id': last_id, 'hash': previous}])

    with op.batch_alter_table('promotion_events', schema=None) as batch_op:
        batch_op.alter_column('prev_hash', existing_type=sa.String(length=64), nullable=False)
        batch_op.alter_column('hash', existing_type=sa.String(length=64), nullable=False)


def downgrade():
    with op.batch_alter_table('promotion_events', schema=None) as batch_op:
        batch_op.drop_column('hash')
        batch_op.drop_column('prev_hash')
    op.drop_table('ledger_head')
