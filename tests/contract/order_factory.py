"""Orders for the Zoho and Airtable contract tests, built directly (no Stripe involved)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from orderpipe.order import Address, Order, OrderLine


def paid_order(order_id: str = "pi_3ContractTest001", *, email: str = "anna@example.fi",
               name: str | None = "Anna Virtanen") -> Order:
    """4000 + 400 tax for two mugs, 990 shipping: 5390 EUR (53.90) in all."""
    address = Address(name=name, line1="Katu 1", postal_code="00100", city="Helsinki", country="FI")
    return Order(
        order_id=order_id,
        checkout_session_id="cs_test_contract",
        created=datetime(2026, 5, 10, 10, 0, tzinfo=UTC),
        currency="eur",
        amount_total=5390,
        amount_tax=400,
        amount_shipping=990,
        tax_from_stripe=True,
        customer_email=email,
        customer_name=name,
        customer_phone="+358401234567",
        billing_address=address,
        shipping_address=address,
        locale="fi",
        reference="A-1001",
        lines=[
            OrderLine(description="Mug", quantity=2, unit_amount=2000, amount_subtotal=4000, amount_tax=400,
                      amount_total=4400, tax_rate=Decimal("25.5"), tax_inclusive=False),
            OrderLine(description="Shipping", quantity=1, amount_subtotal=990, amount_total=990, is_shipping=True),
        ],
    )
