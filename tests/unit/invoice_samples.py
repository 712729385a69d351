"""Orders for the invoice tests, built the way Stripe computes line amounts and taxes."""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal

from hypothesis import strategies as st

from orderpipe.invoicing.seller import Seller
from orderpipe.order import Address, Order, OrderLine

ISSUE_DATE = date(2026, 3, 14)
FI_RATE = Decimal("25.5")
RATES = [Decimal(0), Decimal("5.5"), Decimal(10), Decimal(14), Decimal(24), Decimal("25.5"), Decimal("7.7")]

SELLER = Seller(
    name="Painotalo Pikkuna Oy",
    street="Tehtaankatu 12",
    postcode="00140",
    city="Helsinki",
    country="FI",
    vat_id="FI12345671",
    email="orders@pikkuna.example",
)


@dataclass(frozen=True)
class Item:
    """One cart line: a unit price (minor units) and quantity, as the shop set them up in Stripe."""

    description: str
    unit_amount: int
    quantity: int = 1
    rate: Decimal | None = None  # Stripe's tax rate; None: Stripe computed no tax
    inclusive: bool = False  # the price includes the tax (Stripe inclusive tax behaviour)
    discount: int = 0  # discount on the line (same basis as the price)
    shipping: bool = False
    reason: str | None = None  # taxability_reason


def _round(x: Decimal) -> int:
    return int(x.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def stripe_line(item: Item) -> OrderLine:
    """The line as Stripe reports it: amount_total is after discount and with tax."""
    subtotal = item.unit_amount * item.quantity
    base = subtotal - item.discount
    if item.rate is None or item.rate == 0:
        tax, total = 0, base
    elif item.inclusive:
        total = base
        tax = total - _round(Decimal(total) * 100 / (100 + item.rate))
    else:
        tax = _round(Decimal(base) * item.rate / 100)
        total = base + tax
    return OrderLine(
        description=item.description,
        quantity=item.quantity,
        unit_amount=item.unit_amount,
        amount_subtotal=subtotal,
        amount_discount=item.discount,
        amount_tax=tax,
        amount_total=total,
        tax_rate=item.rate,
        tax_inclusive=item.inclusive if item.rate is not None else None,
        taxability_reason=item.reason,
        is_shipping=item.shipping,
        product_id=None if item.shipping else f"prod_{zlib.crc32(item.description.encode()):08x}",
    )


FI_ADDRESS = Address(name="Anna Virtanen", line1="Katu 1", postal_code="00100", city="Helsinki", country="FI")
DE_ADDRESS = Address(
    name="Jürgen Groß", line1="Hauptstraße 5", postal_code="10115", city="Berlin", country="DE"
)


def make_order(
    items: list[Item],
    *,
    currency: str = "eur",
    order_id: str = "pi_test_1",
    tax_from_stripe: bool | None = None,
    customer_name: str | None = "Anna Virtanen",
    business_name: str | None = None,
    buyer_vat_id: str | None = None,
    tax_exempt: str = "none",
    address: Address | None = FI_ADDRESS,
    email: str | None = "anna@example.fi",
) -> Order:
    lines = [stripe_line(i) for i in items]
    taxed = any(i.rate is not None for i in items) if tax_from_stripe is None else tax_from_stripe
    return Order(
        order_id=order_id,
        created=datetime(2026, 3, 14, 10, 30, tzinfo=UTC),
        currency=currency,
        amount_total=sum(line.amount_total for line in lines),
        amount_tax=sum(line.amount_tax for line in lines),
        amount_shipping=sum(line.amount_total for line in lines if line.is_shipping),
        amount_discount=sum(i.discount for i in items),
        tax_from_stripe=taxed,
        customer_email=email,
        customer_name=customer_name,
        business_name=business_name,
        buyer_vat_id=buyer_vat_id,
        buyer_vat_id_type="eu_vat" if buyer_vat_id else None,
        tax_exempt=tax_exempt,
        billing_address=address,
        shipping_address=address,
        lines=lines,
    )


# ---- the spread of orders every renderer is checked against -----------------------------------


def consumer_fi() -> Order:
    return make_order(
        [
            Item("Juliste A2", 2990, 2, FI_RATE),
            Item("Postikortti", 250, 10, FI_RATE, discount=250),
            Item("Toimitus", 590, 1, FI_RATE, shipping=True),
        ]
    )


def reverse_charge_de() -> Order:
    return make_order(
        [
            Item("Poster A1", 4990, 20, Decimal(0), reason="reverse_charge"),
            Item("Shipping", 1990, 1, Decimal(0), shipping=True, reason="reverse_charge"),
        ],
        tax_from_stripe=True,
        customer_name="Jürgen Groß",
        business_name="Druckerei Groß GmbH",
        buyer_vat_id="DE136695976",
        tax_exempt="reverse",
        address=DE_ADDRESS,
        email="einkauf@gross.example",
        order_id="pi_test_de",
    )


def two_rates() -> Order:
    return make_order(
        [
            Item("Kirja", 3490, 1, Decimal(14)),
            Item("Juliste", 1990, 3, FI_RATE, discount=500),
            Item("Toimitus", 690, 1, FI_RATE, shipping=True),
        ],
        order_id="pi_test_two",
    )


def jpy_order() -> Order:
    return make_order(
        [
            Item("ポスター", 1980, 3, Decimal(10), inclusive=True),
            Item("ステッカー", 105, 7, Decimal(10)),
            Item("送料", 800, 1, Decimal(10), shipping=True),
        ],
        currency="jpy",
        customer_name="山田 太郎",
        order_id="pi_test_jpy",
    )


def kwd_order() -> Order:
    # Stripe charges three-decimal currencies in multiples of 10: 5.750 + 0.999 + 1.001 = 7.750 KWD
    return make_order(
        [
            Item("Poster", 5000, 1, Decimal(15)),
            Item("Sticker", 333, 3, Decimal(0)),
            Item("Shipping", 1001, 1, Decimal(0), shipping=True),
        ],
        currency="kwd",
        order_id="pi_test_kwd",
    )


def inclusive_no_stripe_tax() -> Order:
    return make_order(
        [
            Item("Juliste A2", 2990, 3, None, discount=299),
            Item("Kehys", 1999, 1, None),
            Item("Toimitus", 590, 1, None, shipping=True),
        ],
        tax_from_stripe=False,
        customer_name="Åsa Öberg-Ståhl",
        order_id="pi_test_incl",
    )


def sample_orders() -> dict[str, Order]:
    return {
        "consumer_fi": consumer_fi(),
        "reverse_charge_de": reverse_charge_de(),
        "two_rates": two_rates(),
        "jpy": jpy_order(),
        "kwd": kwd_order(),
        "inclusive_no_stripe_tax": inclusive_no_stripe_tax(),
    }


# ---- random carts for the property tests ------------------------------------------------------


@st.composite
def carts(draw: st.DrawFn) -> Order:
    currency = draw(st.sampled_from(["eur", "jpy", "kwd"]))
    scale = {"eur": 1, "jpy": 1, "kwd": 10}[currency]
    mode = draw(st.sampled_from(["stripe", "stripe", "none", "reverse"]))
    items = []
    for i in range(draw(st.integers(1, 8))):
        unit = draw(st.integers(0, 50_000)) * scale
        qty = draw(st.integers(1, 12))
        discount = draw(st.integers(0, unit * qty)) if draw(st.booleans()) else 0
        if mode == "stripe":
            rate: Decimal | None = draw(st.sampled_from(RATES))
        elif mode == "reverse":
            rate = Decimal(0)
        else:
            rate = None
        items.append(Item(f"Item {i}", unit, qty, rate, inclusive=draw(st.booleans()), discount=discount,
                          reason="reverse_charge" if mode == "reverse" else None))
    if draw(st.booleans()):
        rate = draw(st.sampled_from(RATES)) if mode == "stripe" else (Decimal(0) if mode == "reverse" else None)
        items.append(Item("Shipping", draw(st.integers(0, 3000)) * scale, 1, rate, shipping=True))
    order = make_order(
        items,
        currency=currency,
        tax_from_stripe=mode != "none",
        buyer_vat_id="DE136695976" if mode == "reverse" else draw(st.sampled_from([None, "FI12345671"])),
        tax_exempt="reverse" if mode == "reverse" else "none",
        address=DE_ADDRESS if mode == "reverse" else FI_ADDRESS,
    )
    if currency == "kwd" and order.amount_total % 10:
        # Stripe charges three-decimal currencies in multiples of 10: a handling line rounds it up.
        items.append(Item("Handling", 10 - order.amount_total % 10, 1, Decimal(0) if mode != "none" else None))
        order = make_order(
            items, currency=currency, tax_from_stripe=mode != "none", buyer_vat_id=order.buyer_vat_id,
            tax_exempt=order.tax_exempt, address=order.shipping_address,
        )
        assert order.amount_total % 10 == 0
    return order
