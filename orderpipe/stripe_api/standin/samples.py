"""Sample paid orders for the stand-in (``make demo`` and tests): synthetic, realistic, consistent.

Each sample is a PaymentIntent (status ``succeeded``), usually a basil-style Checkout
Session with its line items (Stripe Tax ``taxes`` included, shown when expanded), the
products and sometimes a Customer. Ids are stable; timestamps are relative to ``now`` so the
orders are "recent" whenever they are seeded. For each sample,
``sum(line totals) + shipping == session.amount_total == payment_intent.amount``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from orderpipe.stripe_api.standin.store import StandinStore

Obj = dict[str, Any]

FI_CONSUMER = "pi_3SampleFiConsumer0001"
SE_CUSTOMER = "pi_3SampleSeSwedish00002"
DE_REVERSE_CHARGE = "pi_3SampleDeReverse00003"
JP_YEN = "pi_3SampleJpYen00000004"
FI_TWO_RATES = "pi_3SampleFiTwoRates0005"
NO_BARE_PI = "pi_3SampleNoBarePi00006"
DK_NO_TAX = "pi_3SampleDkNoTax000007"
FR_PROMO = "pi_3SampleFrPromo000008"

SAMPLE_ORDER_IDS: tuple[str, ...] = (
    FI_CONSUMER, SE_CUSTOMER, DE_REVERSE_CHARGE, JP_YEN, FI_TWO_RATES, NO_BARE_PI, DK_NO_TAX, FR_PROMO,
)

DE_VAT_ID = "DE813452675"  # valid check digit (stdnum.eu.vat.is_valid), fictional company


@dataclass
class SampleOrder:
    payment_intent: Obj
    session: Obj | None = None
    line_items: list[Obj] = field(default_factory=list)
    customer: Obj | None = None
    products: list[Obj] = field(default_factory=list)

    @property
    def order_id(self) -> str:
        return str(self.payment_intent["id"])


@dataclass(frozen=True)
class Tax:
    """A Stripe Tax rate as it appears in ``taxes[].rate``."""

    id: str
    percentage: str  # decimal string, e.g. "25.5"
    country: str
    inclusive: bool = False
    reason: str = "standard_rated"
    display_name: str = "VAT"

    def rate_object(self) -> Obj:
        return {
            "id": self.id, "object": "tax_rate", "active": True, "country": self.country, "created": 1735689600,
            "description": None, "display_name": self.display_name, "effective_percentage": float(self.percentage),
            "inclusive": self.inclusive, "jurisdiction": self.country, "jurisdiction_level": "country",
            "livemode": False, "metadata": {}, "percentage": float(self.percentage), "state": None,
            "tax_type": "vat",
        }

    def amount(self, taxable: int) -> int:
        """Tax on a taxable amount (exclusive) or inside it (inclusive), rounded half up."""
        rate = Decimal(self.percentage)
        if self.inclusive:
            net = (Decimal(taxable) * 100 / (100 + rate)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
            return taxable - int(net)
        return int((Decimal(taxable) * rate / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))

    def entry(self, taxable: int) -> Obj:
        amount = self.amount(taxable)
        base = taxable - amount if self.inclusive else taxable
        return {"amount": amount, "rate": self.rate_object(), "taxability_reason": self.reason,
                "taxable_amount": base}


VAT_FI = Tax("txr_SampleFi255", "25.5", "FI")
VAT_FI_14 = Tax("txr_SampleFi14", "14", "FI", reason="reduced_rated")
VAT_SE = Tax("txr_SampleSe25", "25", "SE", inclusive=True, display_name="Moms")
VAT_FR = Tax("txr_SampleFr20", "20", "FR", display_name="TVA")
REVERSE_DE = Tax("txr_SampleDeRc0", "0", "DE", reason="reverse_charge")
NOT_COLLECTING_JP = Tax("txr_SampleJpNc0", "0", "JP", reason="not_collecting", display_name="JCT")


@dataclass
class _Builder:
    """Computes line and session totals the way Checkout does."""

    prefix: str
    currency: str
    items: list[Obj] = field(default_factory=list)
    products: list[Obj] = field(default_factory=list)

    def line(self, description: str, quantity: int, unit_amount: int, tax: Tax | None,
             discount_percent: int = 0, sku: str | None = None) -> None:
        n = len(self.items) + 1
        product_id = f"prod_Sample{self.prefix}{n:02d}"
        subtotal = quantity * unit_amount
        discount = subtotal * discount_percent // 100
        taxable = subtotal - discount
        entry = tax.entry(taxable) if tax else None
        amount_tax = entry["amount"] if entry else 0
        total = taxable + (0 if tax is None or tax.inclusive else amount_tax)
        item: Obj = {
            "id": f"li_Sample{self.prefix}{n:02d}", "object": "item", "description": description,
            "quantity": quantity, "currency": self.currency,
            "amount_subtotal": subtotal, "amount_discount": discount, "amount_tax": amount_tax, "amount_total": total,
            "price": {
                "id": f"price_Sample{self.prefix}{n:02d}", "object": "price", "active": True,
                "currency": self.currency, "product": product_id, "type": "one_time", "unit_amount": unit_amount,
                "unit_amount_decimal": str(unit_amount), "tax_behavior": (
                    "inclusive" if tax and tax.inclusive else "exclusive" if tax else "unspecified"),
                "billing_scheme": "per_unit", "livemode": False, "metadata": {}, "recurring": None,
            },
            "taxes": [entry] if entry else [],
        }
        self.items.append(item)
        self.products.append({
            "id": product_id, "object": "product", "active": True, "name": description, "description": None,
            "livemode": False, "metadata": {"sku": sku or f"SKU-{self.prefix.upper()}-{n:02d}"},
            "tax_code": "txcd_99999999",
        })

    def shipping(self, amount: int, tax: Tax | None) -> Obj:
        entry = tax.entry(amount) if tax else None
        amount_tax = entry["amount"] if entry else 0
        total = amount + (0 if tax is None or tax.inclusive else amount_tax)
        return {"amount_subtotal": amount, "amount_tax": amount_tax, "amount_total": total,
                "shipping_rate": f"shr_Sample{self.prefix}", "taxes": [entry] if entry else []}

    def totals(self, shipping_cost: Obj | None) -> tuple[int, int, Obj]:
        """(amount_subtotal, amount_total, total_details) of the session."""
        subtotal = sum(i["amount_subtotal"] for i in self.items)
        total = sum(i["amount_total"] for i in self.items)
        tax = sum(i["amount_tax"] for i in self.items)
        discount = sum(i["amount_discount"] for i in self.items)
        shipping = 0
        if shipping_cost:
            total += shipping_cost["amount_total"]
            tax += shipping_cost["amount_tax"]
            shipping = shipping_cost["amount_subtotal"]
        return subtotal, total, {"amount_discount": discount, "amount_shipping": shipping, "amount_tax": tax}


def _address(line1: str, postal_code: str, city: str, country: str, *, line2: str | None = None,
             state: str | None = None) -> Obj:
    return {"line1": line1, "line2": line2, "postal_code": postal_code, "city": city, "state": state,
            "country": country}


def _payment_intent(pi_id: str, amount: int, currency: str, created: int, *, customer: str | None = None,
                    description: str | None = None, receipt_email: str | None = None,
                    shipping: Obj | None = None, metadata: Obj | None = None) -> Obj:
    return {
        "id": pi_id, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
        "amount_details": {"tip": {}}, "amount_received": amount, "application": None,
        "application_fee_amount": None, "automatic_payment_methods": None, "canceled_at": None,
        "cancellation_reason": None, "capture_method": "automatic_async", "client_secret": None,
        "confirmation_method": "automatic", "created": created, "currency": currency, "customer": customer,
        "description": description, "last_payment_error": None, "latest_charge": "ch_" + pi_id[3:],
        "livemode": False, "metadata": metadata or {}, "next_action": None, "on_behalf_of": None,
        "payment_method": "pm_" + pi_id[3:], "payment_method_types": ["card"], "processing": None,
        "receipt_email": receipt_email, "review": None, "setup_future_usage": None, "shipping": shipping,
        "statement_descriptor": None, "statement_descriptor_suffix": None, "status": "succeeded",
        "transfer_data": None, "transfer_group": None,
    }


def _session(b: _Builder, pi_id: str, created: int, *, locale: str, details: Obj, shipping_name: str | None,
             shipping_address: Obj | None, shipping_cost: Obj | None, customer: str | None = None,
             metadata: Obj | None = None, client_reference_id: str | None = None,
             automatic_tax: bool = True) -> Obj:
    subtotal, total, total_details = b.totals(shipping_cost)
    collected = {"business_name": details.get("business_name"), "individual_name": details.get("individual_name"),
                 "shipping_details": ({"name": shipping_name, "address": shipping_address}
                                      if shipping_address else None)}
    return {
        "id": f"cs_test_a1Sample{b.prefix}{pi_id[-4:]}", "object": "checkout.session", "mode": "payment",
        "status": "complete", "payment_status": "paid", "payment_intent": pi_id, "livemode": False,
        "created": created - 120, "expires_at": created - 120 + 86400, "currency": b.currency, "locale": locale,
        "client_reference_id": client_reference_id, "metadata": metadata or {},
        "amount_subtotal": subtotal, "amount_total": total, "total_details": total_details,
        "automatic_tax": {"enabled": automatic_tax, "liability": {"type": "self"} if automatic_tax else None,
                          "status": "complete" if automatic_tax else None,
                          "provider": "stripe" if automatic_tax else None},
        "shipping_cost": shipping_cost, "customer": customer, "customer_creation": "if_required",
        "customer_email": None,
        "customer_details": {"address": None, "business_name": None, "individual_name": None, "phone": None,
                             "tax_exempt": "none", "tax_ids": [], **details},
        "collected_information": collected,
        "invoice": None, "payment_link": None, "payment_method_types": ["card"], "submit_type": "pay",
        "success_url": "https://shop.pikkuna.example/thanks", "cancel_url": "https://shop.pikkuna.example/cart",
        "ui_mode": "hosted", "url": None,
    }


def _customer(cus_id: str, created: int, *, name: str, email: str | None, locales: list[str],
              phone: str | None = None, address: Obj | None = None) -> Obj:
    return {
        "id": cus_id, "object": "customer", "address": address, "balance": 0, "created": created - 86400 * 30,
        "currency": None, "default_source": None, "delinquent": False, "description": None, "email": email,
        "invoice_prefix": cus_id[-6:].upper(), "livemode": False, "metadata": {}, "name": name,
        "phone": phone, "preferred_locales": locales, "shipping": None, "tax_exempt": "none", "test_clock": None,
    }


def _checkout_order(b: _Builder, pi_id: str, created: int, session_kwargs: Obj,
                    customer: Obj | None = None, pi_metadata: Obj | None = None) -> SampleOrder:
    session = _session(b, pi_id, created, customer=customer["id"] if customer else None, **session_kwargs)
    pi = _payment_intent(pi_id, session["amount_total"], b.currency, created,
                         customer=customer["id"] if customer else None, metadata=pi_metadata)
    return SampleOrder(pi, session, b.items, customer, b.products)


def sample_orders(now: int | None = None) -> list[SampleOrder]:
    """All sample orders, created a few minutes to hours before ``now`` (Unix seconds)."""
    now = int(now if now is not None else time.time())
    out: list[SampleOrder] = []

    # Finnish consumer, EUR, Stripe Tax 25.5 % exclusive, two lines + taxed shipping.
    b = _Builder("Fi", "eur")
    b.line("Art print A3, Helsinki harbour", 2, 2490, VAT_FI, sku="PRINT-A3-HKI")
    b.line("Greeting card set (8)", 1, 1290, VAT_FI, sku="CARDS-8")
    addr = _address("Hämeenkatu 14 B 22", "33100", "Tampere", "FI")
    cus = _customer("cus_SampleFiAino", now, name="Aino Mäkinen", email="aino.makinen@example.fi", locales=["fi"])
    out.append(_checkout_order(b, FI_CONSUMER, now - 3600, {
        "locale": "fi", "shipping_name": "Aino Mäkinen", "shipping_address": addr,
        "shipping_cost": b.shipping(690, VAT_FI), "metadata": {"order_ref": "PK-1001"},
        "client_reference_id": "cart-5521",
        "details": {"email": "aino.makinen@example.fi", "name": "Aino Mäkinen", "phone": "+358401234567",
                    "address": addr},
    }, customer=cus))

    # Swedish customer, SEK, Swedish VAT 25 % inclusive (OSS), locale sv.
    b = _Builder("Se", "sek")
    b.line("Canvas print 40x50, Skärgård", 1, 79900, VAT_SE)
    b.line("Frame, oak 40x50", 1, 34900, VAT_SE)
    addr = _address("Götgatan 48", "118 26", "Stockholm", "SE")
    out.append(_checkout_order(b, SE_CUSTOMER, now - 3000, {
        "locale": "sv", "shipping_name": "Åsa Öberg-Ståhl", "shipping_address": addr,
        "shipping_cost": b.shipping(7900, VAT_SE), "metadata": {"order_ref": "PK-1002"},
        "details": {"email": "asa.oberg-stahl@example.se", "name": "Åsa Öberg-Ståhl", "phone": "+46701234567",
                    "address": addr},
    }))

    # German B2B buyer, EU VAT id, reverse charge (zero tax), locale de.
    b = _Builder("De", "eur")
    b.line("Business cards, 500 pcs", 3, 4500, REVERSE_DE)
    b.line("Letterhead A4, 1000 sheets", 1, 18900, REVERSE_DE)
    addr = _address("Oranienstraße 183", "10999", "Berlin", "DE", line2="Hinterhaus, 3. OG")
    out.append(_checkout_order(b, DE_REVERSE_CHARGE, now - 2400, {
        "locale": "de", "shipping_name": "Druckwerk Berlin GmbH, z. Hd. Jonas Weber", "shipping_address": addr,
        "shipping_cost": b.shipping(1490, REVERSE_DE), "metadata": {"order_ref": "PK-1003", "po_number": "4500-2231"},
        "details": {"email": "einkauf@druckwerk-berlin.example", "name": "Jonas Weber",
                    "business_name": "Druckwerk Berlin GmbH", "phone": "+4930123456", "address": addr,
                    "tax_exempt": "reverse", "tax_ids": [{"type": "eu_vat", "value": DE_VAT_ID}]},
    }))

    # Japanese order, JPY (zero-decimal), Stripe Tax not collecting (export), locale ja.
    b = _Builder("Jp", "jpy")
    b.line("Art print A2, Suomenlinna", 1, 4800, NOT_COLLECTING_JP)
    b.line("Washi tape set", 2, 1250, NOT_COLLECTING_JP)
    addr = _address("1-2-3 Jingumae", "150-0001", "Shibuya-ku", "JP", line2="Harajuku Flat 402", state="Tokyo")
    out.append(_checkout_order(b, JP_YEN, now - 1800, {
        "locale": "ja", "shipping_name": "Yuki Tanaka", "shipping_address": addr,
        "shipping_cost": b.shipping(1800, NOT_COLLECTING_JP),
        "details": {"email": "yuki.tanaka@example.jp", "name": "Yuki Tanaka", "phone": "+81312345678",
                    "address": addr},
    }))

    # Finnish order with two VAT rates: 14 % (books) and 25.5 %.
    b = _Builder("Ft", "eur")
    b.line("Photo book, hardcover A4", 1, 3990, VAT_FI_14, sku="BOOK-A4-HC")
    b.line("Poster 50x70, Lapland", 2, 1990, VAT_FI, sku="POSTER-50x70")
    addr = _address("Kauppakatu 7 A 3", "40100", "Jyväskylä", "FI")
    out.append(_checkout_order(b, FI_TWO_RATES, now - 1200, {
        "locale": "fi", "shipping_name": "Mikko Heikkinen", "shipping_address": addr,
        "shipping_cost": b.shipping(590, VAT_FI), "client_reference_id": "cart-5530",
        "details": {"email": "mikko.heikkinen@example.fi", "name": "Mikko Heikkinen", "phone": None,
                    "address": addr},
    }))

    # A bare PaymentIntent (no Checkout): Norwegian customer, shipping on the PI, receipt_email.
    cus = _customer("cus_SampleNoKari", now, name="Kari Nordmann", email=None, locales=["nb"],
                    phone="+4791234567")
    pi = _payment_intent(
        NO_BARE_PI, 64900, "nok", now - 900, customer=cus["id"], description="Poster print 50x70 cm, matte",
        receipt_email="kari.nordmann@example.no", metadata={"order_ref": "PK-1006", "channel": "instagram"},
        shipping={"name": "Kari Nordmann", "phone": "+4791234567", "carrier": None, "tracking_number": None,
                  "address": _address("Storgata 15", "0184", "Oslo", "NO")},
    )
    out.append(SampleOrder(pi, None, [], cus, []))

    # Danish order, no Stripe Tax (prices include the seller's VAT), locale da.
    b = _Builder("Dk", "dkk")
    b.line("Plakat 30x40, Nyhavn", 2, 24900, None)
    addr = _address("Nørrebrogade 52, 2. th.", "2200", "København N", "DK")
    out.append(_checkout_order(b, DK_NO_TAX, now - 600, {
        "locale": "da", "shipping_name": "Mette Sørensen", "shipping_address": addr,
        "shipping_cost": b.shipping(4900, None), "automatic_tax": False,
        "details": {"email": "mette.sorensen@example.dk", "name": "Mette Sørensen", "phone": "+4520123456",
                    "address": addr},
    }))

    # French order with a 10 % promotion code spread over the lines, TVA 20 % (OSS), locale fr.
    b = _Builder("Fr", "eur")
    b.line("Affiche 50x70, Aurores boréales", 1, 2990, VAT_FR, discount_percent=10)
    b.line("Cartes postales, lot de 10", 1, 990, VAT_FR, discount_percent=10)
    addr = _address("12 rue de la République", "69002", "Lyon", "FR")
    out.append(_checkout_order(b, FR_PROMO, now - 300, {
        "locale": "fr", "shipping_name": "Élodie Dupré", "shipping_address": addr,
        "shipping_cost": b.shipping(490, VAT_FR), "client_reference_id": "cart-fr-8812",
        "metadata": {"promotion_code": "AUTOMNE10"},
        "details": {"email": "elodie.dupre@example.fr", "name": "Élodie Dupré", "phone": "+33612345678",
                    "address": addr},
    }))
    return out


def seed_store(store: StandinStore, now: int | None = None) -> list[str]:
    """Add every sample order to the store; returns their ids (``SAMPLE_ORDER_IDS``)."""
    ids = []
    for sample in sample_orders(now):
        ids.append(store.add_order(sample.payment_intent, sample.session, sample.line_items, sample.customer,
                                   sample.products))
    return ids


def clone_order(store: StandinStore, source_id: str, new_id: str, *, drop_email: bool = False,
                   drop_shipping: bool = False) -> str:
    """A copy of a sample order under a new PaymentIntent id, optionally missing data."""
    sample = next(s for s in sample_orders() if s.order_id == source_id)
    pi = copy.deepcopy(sample.payment_intent)
    pi["id"] = new_id
    pi["latest_charge"] = "ch_" + new_id.removeprefix("pi_")
    session = copy.deepcopy(sample.session)
    customer = copy.deepcopy(sample.customer)
    if session is not None:
        session["id"] = "cs_" + new_id.removeprefix("pi_")
        session["payment_intent"] = new_id
        if drop_email:
            session["customer_details"]["email"] = None
            session["customer_email"] = None
        if drop_shipping:
            session["collected_information"] = {"shipping_details": None}
            session.pop("shipping_details", None)
    if drop_email:
        pi["receipt_email"] = None
        customer = None
        if session is not None:
            session["customer"] = None
        pi["customer"] = None
    if drop_shipping:
        pi["shipping"] = None
    return store.add_order(pi, session, sample.line_items, customer, sample.products)


def add_free_order(store: StandinStore, session_id: str = "cs_test_a1SampleFreeOrder0001", *,
                   now: int | None = None) -> str:
    """A free Checkout order (a 100 % promotion code: `payment_status` `no_payment_required`, no
    PaymentIntent), the Finnish sample's customer; returns its order id, the session id."""
    now = int(now if now is not None else time.time())
    b = _Builder("Free", "eur")
    b.line("Greeting card set (8)", 1, 1290, VAT_FI, discount_percent=100, sku="CARDS-8")
    addr = _address("Hämeenkatu 14 B 22", "33100", "Tampere", "FI")
    session = _session(b, session_id, now - 60, locale="fi", shipping_name="Aino Mäkinen", shipping_address=addr,
                       shipping_cost=None, metadata={"order_ref": "PK-FREE-1"},
                       details={"email": "aino.makinen@example.fi", "name": "Aino Mäkinen", "address": addr})
    session.update({"id": session_id, "payment_intent": None, "payment_status": "no_payment_required"})
    return store.add_order(None, session, b.items, None, b.products)
