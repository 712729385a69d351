"""refunds (one row per Stripe refund or lost dispute), refund scans (charge.refunded), disputes

Revision ID: 0006_refunds
Revises: 0005_vendor_attempts
Create Date: 2026-12-02 12:00:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0006_refunds'
down_revision = '0005_vendor_attempts'
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table('refunds',
    sa.Column('refund_id', _S(length=255), nullable=False),
    sa.Column('kind', _S(length=20), nullable=False),
    sa.Column('order_id', _S(length=255), nullable=True),
    sa.Column('charge_id', _S(length=255), nullable=True),
    sa.Column('first_event_id', _S(length=255), nullable=False),
    sa.Column('state', _S(length=20), nullable=False),
    sa.Column('dispatch', _S(length=20), nullable=False),
    sa.Column('flow_run_id', _S(length=64), nullable=True),
    sa.Column('dispatch_attempts', sa.Integer(), nullable=False),
    sa.Column('next_dispatch_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('amount', sa.Integer(), nullable=True),
    sa.Column('currency', _S(length=3), nullable=True),
    sa.Column('stripe_status', _S(length=40), nullable=True),
    sa.Column('credit_note_number', _S(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('refund_id')
    )
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_refunds_order_id'), ['order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_refunds_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_refunds_dispatch'), ['dispatch'], unique=False)
        batch_op.create_index(batch_op.f('ix_refunds_created_at'), ['created_at'], unique=False)
    op.create_table('refund_scans',
    sa.Column('order_id', _S(length=255), nullable=False),
    sa.Column('charge_id', _S(length=255), nullable=True),
    sa.Column('pending', sa.Boolean(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('requested_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('order_id')
    )
    op.create_table('disputes',
    sa.Column('dispute_id', _S(length=255), nullable=False),
    sa.Column('order_id', _S(length=255), nullable=True),
    sa.Column('charge_id', _S(length=255), nullable=True),
    sa.Column('amount', sa.Integer(), nullable=True),
    sa.Column('currency', _S(length=3), nullable=True),
    sa.Column('reason', _S(length=64), nullable=True),
    sa.Column('status', _S(length=40), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('dispute_id')
    )
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_disputes_order_id'), ['order_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('disputes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_disputes_order_id'))
    op.drop_table('disputes')
    op.drop_table('refund_scans')
    with op.batch_alter_table('refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_refunds_created_at'))
        batch_op.drop_index(batch_op.f('ix_refunds_dispatch'))
        batch_op.drop_index(batch_op.f('ix_refunds_state'))
        batch_op.drop_index(batch_op.f('ix_refunds_order_id'))
    op.drop_table('refunds')
