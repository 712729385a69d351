"""erasures_pending (orders whose S3 objects or Prefect artifacts forget has still to erase)

Revision ID: 0007_erasures_pending
Revises: 0006_refunds
Create Date: 2026-12-20 10:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0007_erasures_pending'
down_revision = '0006_refunds'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('erasures_pending',
    sa.Column('order_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('part', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('order_id', 'part')
    )


def downgrade() -> None:
    op.drop_table('erasures_pending')
