"""vendor_attempts (writes whose outcome is not recorded yet); orders.dispatch_failing_since

Revision ID: 0005_vendor_attempts
Revises: 0004_credit_notes
Create Date: 2026-12-10 10:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0005_vendor_attempts'
down_revision = '0004_credit_notes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('vendor_attempts',
    sa.Column('order_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('step', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('vendor', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('order_id', 'step')
    )
    with op.batch_alter_table('orders') as batch:
        batch.add_column(sa.Column('dispatch_failing_since', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('orders') as batch:
        batch.drop_column('dispatch_failing_since')
    op.drop_table('vendor_attempts')
