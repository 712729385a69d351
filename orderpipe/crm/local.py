"""Embedded CRM: contacts (upsert by email) and one deal per order, in orderpipe's database."""

from __future__ import annotations

from sqlalchemy import Engine, select

from orderpipe.connectors.base import CrmResult
from orderpipe.crm import refund_stage
from orderpipe.db import insert_ignore, ping, session_scope
from orderpipe.errors import OrderDataError
from orderpipe.order import Order
from orderpipe.tables import CrmContact, CrmDeal, utcnow


class LocalCrm:
    name = "local"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def record_order(self, order: Order) -> CrmResult:
        if not order.customer_email:
            raise OrderDataError(f"order {order.order_id} has no customer email: the CRM contact is keyed on it")
        email = order.customer_email.strip().lower()
        now = utcnow()
        with session_scope(self.engine) as s:
            insert_ignore(s, CrmContact, dict(email=email, created_at=now, updated_at=now))
            contact = s.scalars(select(CrmContact).where(CrmContact.email == email)).one()
            contact.name = order.customer_name or contact.name
            contact.phone = order.customer_phone or contact.phone
            contact.company = order.business_name or contact.company
            contact.vat_id = order.buyer_vat_id or contact.vat_id
            contact.country = order.country or contact.country
            contact.updated_at = now
            s.add(contact)
            s.flush()
            assert contact.id is not None
            created = insert_ignore(
                s, CrmDeal,
                dict(order_id=order.order_id, contact_id=contact.id, title=f"Order {order.reference or order.order_id}",
                     stage="Closed Won", currency=order.currency, amount_total=order.amount_total, created_at=now),
            )
            deal = s.scalars(select(CrmDeal).where(CrmDeal.order_id == order.order_id)).one()
            return CrmResult(contact_id=str(contact.id), deal_id=str(deal.id), created=created)

    def record_refund(self, order_id: str, payment_status: str, refunded_amount: int) -> bool:
        """The order's deal after a refund or lost dispute: its stage names the payment status.

        Idempotent (sets, never adds); False when the order has no deal (never fulfilled)."""
        stage = refund_stage(payment_status)
        with session_scope(self.engine) as s:
            deal = s.scalars(select(CrmDeal).where(CrmDeal.order_id == order_id)).first()
            if deal is None:
                return False
            deal.stage = stage
            s.add(deal)
            return True

    def check(self) -> None:
        ping(self.engine)
