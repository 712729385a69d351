"""Embedded shipping: an S10 tracking number from the shipments table and a PDF label.

Idempotent by order: the ``shipments`` row (unique on order_id) is inserted and given its
tracking number in one transaction; its id is the S10 serial number. The label is rendered
deterministically and stored under ``labels/<pi id>.pdf`` on every call, so a repeat
re-stores a label that went missing and otherwise overwrites it with identical bytes.
"""

from __future__ import annotations

import functools

from babel import Locale
from sqlalchemy import Engine
from sqlmodel import select

from orderpipe.connectors.base import FileStore, ShipmentResult
from orderpipe.db import insert_ignore, session_scope
from orderpipe.errors import OrderDataError
from orderpipe.order import Address, Order
from orderpipe.shipping.label import render_label
from orderpipe.shipping.tracking_number import make_tracking_number
from orderpipe.tables import Shipment, utcnow

SERVICE_INDICATOR = "CP"  # S10 "C*": parcels
CARRIER = "local"
REQUIRED_FIELDS = ("line1", "postal_code", "city", "country")
# Countries whose addresses put the city before the postal code.
_CITY_FIRST = frozenset({"US", "CA", "AU"})
_POSTCODE_LAST_LINE = frozenset({"GB", "IE"})


@functools.cache
def _english() -> Locale:
    return Locale("en")


def country_name(code: str) -> str:
    return _english().territories.get(code.upper(), code.upper())


def recipient_lines(order: Order, address: Address, *, sender_country: str) -> list[str]:
    """Address lines as a postal label prints them (country in English capitals when abroad)."""
    country = (address.country or "").upper()
    out: list[str] = []
    name = address.name or order.customer_name
    if name:
        out.append(name)
    if order.business_name and order.business_name != name:
        out.append(order.business_name)
    out += [x for x in (address.line1, address.line2) if x]
    if country in _CITY_FIRST:
        out.append(" ".join(x for x in (address.city, address.state, address.postal_code) if x))
    elif country in _POSTCODE_LAST_LINE:
        out += [x for x in (address.city, address.state, address.postal_code) if x]
    else:
        out.append(" ".join(x for x in (address.postal_code, address.city) if x))
        if address.state:
            out.append(address.state)
    if country and country != sender_country.upper():
        out.append(country_name(country).upper())
    return out


def require_address(order: Order) -> Address:
    address = order.shipping_address
    if address is not None and address.is_shippable():
        return address
    if address is None:
        reason = "Stripe gave no shipping address"
    else:
        missing = [f for f in REQUIRED_FIELDS if not getattr(address, f)]
        reason = "missing " + ", ".join(missing)
    raise OrderDataError(f"order {order.order_id} has no shipping address: {reason} (step: shipment)")


class LocalShipping:
    """ShippingConnector of the embedded stack."""

    name = "local"

    def __init__(
        self,
        engine: Engine,
        files: FileStore,
        sender: list[str],
        sender_country: str,
        tracking_url_template: str,
    ) -> None:
        self.engine = engine
        self.files = files
        self.sender = list(sender)
        self.sender_country = sender_country.upper()
        self.tracking_url_template = tracking_url_template

    def tracking_url(self, tracking_number: str) -> str:
        return self.tracking_url_template.replace("{tracking_number}", tracking_number)

    def _book(self, order_id: str) -> tuple[str, str | None, bool]:
        """One transaction: the order's row and its tracking number; (number, label key, created)."""
        with session_scope(self.engine) as session:
            insert_ignore(session, Shipment, {"order_id": order_id, "carrier": CARRIER, "created_at": utcnow()})
            row = session.exec(select(Shipment).where(Shipment.order_id == order_id)).one()
            if row.tracking_number:
                return row.tracking_number, row.label_key, False
            assert row.id is not None
            row.tracking_number = make_tracking_number(SERVICE_INDICATOR, row.id, self.sender_country)
            session.add(row)
            return row.tracking_number, row.label_key, True

    def create_shipment(self, order: Order) -> ShipmentResult:
        address = require_address(order)
        tracking_number, label_key, created = self._book(order.order_id)
        pdf = render_label(
            tracking_number=tracking_number,
            sender_lines=self.sender,
            recipient_lines=recipient_lines(order, address, sender_country=self.sender_country),
            order_id=order.order_id,
            notes=f"Ref {order.reference}" if order.reference else None,
        )
        key = f"labels/{order.order_id}.pdf"
        stored = self.files.put(key, pdf, "application/pdf")
        if label_key != key:
            with session_scope(self.engine) as session:
                row = session.exec(select(Shipment).where(Shipment.order_id == order.order_id)).one()
                row.label_key = key
                session.add(row)
        return ShipmentResult(
            tracking_number=tracking_number,
            carrier=CARRIER,
            tracking_url=self.tracking_url(tracking_number),
            label=stored,
            created=created,
        )

    def check(self) -> None:
        self.files.check()
