"""Credit notes and their own number series; invoice numbers unique per seller; invoices keep their document

Revision ID: 0004_credit_notes
Revises: 0003
Create Date: 2026-12-02 10:00:00

Invoice numbers were unique across sellers, so a new seller VAT id's series (starting at
000001) collided with the old one: the unique constraint is now (seller_id, number).
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0004_credit_notes'
down_revision = '0003'
branch_labels = None
depends_on = None


def _invoices_without_number_unique(metadata: sa.MetaData) -> sa.Table:
    """The invoices table as 0001 made it, minus its (unnamed) UNIQUE(number): SQLite's batch copy source."""
    return sa.Table('invoices', metadata,
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('order_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column('seller_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('year', sa.Integer(), nullable=False),
        sa.Column('seq', sa.Integer(), nullable=False),
        sa.Column('number', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('issue_date', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
        sa.Column('amount_total', sa.Integer(), nullable=False),
        sa.Column('amount_tax', sa.Integer(), nullable=False),
        sa.Column('vendor_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('order_id'),
        sa.UniqueConstraint('seller_id', 'year', 'seq', name='uq_invoices_seller_year_seq'),
    )


def upgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.drop_constraint('invoices_number_key', 'invoices', type_='unique')
        op.add_column('invoices', sa.Column('document', sa.Text(), nullable=True))
        op.create_unique_constraint('uq_invoices_seller_number', 'invoices', ['seller_id', 'number'])
    else:
        with op.batch_alter_table('invoices', recreate='always',
                                  copy_from=_invoices_without_number_unique(sa.MetaData())) as batch_op:
            batch_op.add_column(sa.Column('document', sa.Text(), nullable=True))
            batch_op.create_unique_constraint('uq_invoices_seller_number', ['seller_id', 'number'])

    op.create_table('credit_note_counters',
    sa.Column('seller_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('last_seq', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('seller_id', 'year')
    )
    op.create_table('credit_notes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('refund_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('order_id', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('invoice_number', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('seller_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('number', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('issue_date', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('currency', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('amount_total', sa.Integer(), nullable=False),
    sa.Column('amount_tax', sa.Integer(), nullable=False),
    sa.Column('parts', sa.Text(), nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('vendor_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('refund_id'),
    sa.UniqueConstraint('seller_id', 'number', name='uq_credit_notes_seller_number'),
    sa.UniqueConstraint('seller_id', 'year', 'seq', name='uq_credit_notes_seller_year_seq')
    )
    with op.batch_alter_table('credit_notes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_credit_notes_order_id'), ['order_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('credit_notes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_credit_notes_order_id'))
    op.drop_table('credit_notes')
    op.drop_table('credit_note_counters')
    with op.batch_alter_table('invoices') as batch_op:
        batch_op.drop_constraint('uq_invoices_seller_number', type_='unique')
        batch_op.drop_column('document')
        batch_op.create_unique_constraint('invoices_number_key', ['number'])
