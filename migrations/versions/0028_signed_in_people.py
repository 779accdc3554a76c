"""signed-in people: a dashboard session of a person signed in through single sign-on, with no token

Revision ID: 0028
Revises: 0027
Create Date: 2026-11-25 21:00:00.000000

"""
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0028'
down_revision = '0027'
branch_labels = None
depends_on = None


def upgrade():
    # A session holds either a token's hash (a token signed in) or a person (who signed in through the
    # OpenID provider: actor name, role, scopes, groups). Batch mode on SQLite copies the table: it holds
    # the open sessions only.
    with op.batch_alter_table('browser_sessions', schema=None) as batch_op:
        batch_op.alter_column('token_hash', existing_type=sa.String(length=64), nullable=True)
        batch_op.add_column(sa.Column('person', sa.JSON(), nullable=True))


def downgrade():
    # A person's session has no token to fall back on: it ends.
    op.execute("DELETE FROM browser_sessions WHERE token_hash IS NULL")
    with op.batch_alter_table('browser_sessions', schema=None) as batch_op:
        batch_op.drop_column('person')
        batch_op.alter_column('token_hash', existing_type=sa.String(length=64), nullable=False)
