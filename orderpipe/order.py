"""The normalised order: what every step works from. Amounts are Stripe minor units."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field


class Address(BaseModel):
    name: str | None = None
    line1: str | None = None
    line2: str | None = None
    postal_code: str | None = None
    city: str | None = None
    state: str | None = None
    country: str | None = None  # ISO 3166 alpha-2, upper case

    def is_shippable(self) -> bool:
        return bool(self.line1 and self.postal_code and self.city and self.country)

    def lines(self) -> list[str]:
        """Printable address lines (name first when present)."""
        out = [x for x in (self.name, self.line1, self.line2) if x]
        town = " ".join(x for x in (self.postal_code, self.city) if x)
        if town:
            out.append(town)
        if self.state:
            out.append(self.state)
        if self.country:
            out.append(self.country)
        return out


class OrderLine(BaseModel):
    """One Checkout line item (or the single line of a bare PaymentIntent).

    ``amount_total`` is what the customer paid for the line (after discounts, with tax);
    ``amount_tax`` the tax inside it; so the net amount is ``amount_total - amount_tax``.
    ``tax_rate`` is the percentage Stripe applied, ``None`` when Stripe computed no tax.
    """

    description: str
    quantity: int = Field(ge=1)
    unit_amount: int | None = None
    amount_subtotal: int
    amount_discount: int = 0
    amount_tax: int = 0
    amount_total: int
    tax_rate: Decimal | None = None
    tax_inclusive: bool | None = None
    taxability_reason: str | None = None
    product_id: str | None = None
    is_shipping: bool = False

    @property
    def amount_net(self) -> int:
        return self.amount_total - self.amount_tax


class Order(BaseModel):
    order_id: str  # the PaymentIntent id, pi_...
    checkout_session_id: str | None = None
    livemode: bool = False
    created: datetime
    currency: str  # lower case, as Stripe gives it
    amount_total: int  # what Stripe charged, minor units
    amount_tax: int = 0  # total_details.amount_tax (0 when Stripe computed no tax)
    amount_shipping: int = 0
    amount_discount: int = 0
    tax_from_stripe: bool = False  # Stripe computed taxes (line taxes or amount_tax)
    customer_id: str | None = None
    customer_email: str | None = None
    customer_name: str | None = None
    customer_phone: str | None = None
    business_name: str | None = None
    buyer_vat_id: str | None = None  # e.g. "DE123456789" (from customer_details.tax_ids)
    buyer_vat_id_type: str | None = None  # e.g. "eu_vat"
    tax_exempt: str = "none"  # none | exempt | reverse
    billing_address: Address | None = None
    shipping_address: Address | None = None
    locale: str | None = None  # as Stripe gives it (e.g. "fi", "sv", "auto", "pt-BR")
    lines: list[OrderLine]
    metadata: dict[str, str] = Field(default_factory=dict)
    reference: str | None = None  # metadata order_ref / client_reference_id when present
    amount_refunded: int = 0  # the charge's amount_refunded when the order was read (refund guard)
    billing_invoice: str | None = None  # paid through this Stripe (Billing) invoice: not a shop order

    @property
    def fully_refunded(self) -> bool:
        """Refunded in full before fulfilment: the order ends cancelled, nothing is shipped or invoiced."""
        return self.amount_total > 0 and self.amount_refunded >= self.amount_total

    @property
    def country(self) -> str | None:
        for a in (self.shipping_address, self.billing_address):
            if a and a.country:
                return a.country
        return None

    @property
    def recipient_name(self) -> str | None:
        if self.shipping_address and self.shipping_address.name:
            return self.shipping_address.name
        return self.customer_name

    def lines_total(self) -> int:
        return sum(line.amount_total for line in self.lines)
