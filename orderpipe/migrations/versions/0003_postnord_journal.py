"""PostNord booking journal in the database (was <data dir>/postnord/<pi>.json)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01 22:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('postnord_bookings',
    sa.Column('order_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('item_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('tracking_url', sa.Text(), nullable=False),
    sa.Column('booking_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('label_b64', sa.Text(), nullable=True),
    sa.Column('booked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('order_id')
    )


def downgrade() -> None:
    op.drop_table('postnord_bookings')
