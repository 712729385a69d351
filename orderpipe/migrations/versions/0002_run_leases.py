"""run leases: which worker executes which flow run (crash recovery)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 21:50:00
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('run_leases',
    sa.Column('flow_run_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('order_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('worker', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('flow_run_id')
    )
    with op.batch_alter_table('run_leases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_run_leases_order_id'), ['order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_run_leases_worker'), ['worker'], unique=False)
        batch_op.create_index(batch_op.f('ix_run_leases_heartbeat_at'), ['heartbeat_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('run_leases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_run_leases_heartbeat_at'))
        batch_op.drop_index(batch_op.f('ix_run_leases_worker'))
        batch_op.drop_index(batch_op.f('ix_run_leases_order_id'))
    op.drop_table('run_leases')
