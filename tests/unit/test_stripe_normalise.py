"""normalise(): Stripe objects -> Order, for every sample and the awkward edges."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from stdnum.eu import vat

from orderpipe.money import to_decimal
from orderpipe.order import Order
from orderpipe.stripe_api.normalise import normalise, reconcile_lines
from orderpipe.stripe_api.standin import samples
from orderpipe.stripe_api.standin.samples import SampleOrder, sample_orders

NOW = 1_790_000_000


def _samples() -> dict[str, SampleOrder]:
    return {s.order_id: s for s in sample_orders(NOW)}


def _order(sample: SampleOrder) -> Order:
    return normalise(sample.payment_intent, sample.session, sample.line_items, sample.customer)


def _sample(order_id: str) -> SampleOrder:
    return copy.deepcopy(_samples()[order_id])


@pytest.mark.parametrize("order_id", samples.SAMPLE_ORDER_IDS)
def test_every_sample_adds_up(order_id: str) -> None:
    sample = _sample(order_id)
    order = _order(sample)
    assert order.order_id == order_id
    assert order.amount_total == sample.payment_intent["amount"]
    if sample.session is not None:
        assert order.amount_total == sample.session["amount_total"]
        assert order.checkout_session_id == sample.session["id"]
    assert order.lines_total() == order.amount_total
    assert order.currency == order.currency.lower()
    assert order.customer_email and "@" in order.customer_email
    assert order.shipping_address is not None and order.shipping_address.is_shippable()
    assert order.shipping_address.country == order.shipping_address.country.upper()
    assert order.locale
    assert sum(1 for line in order.lines if line.is_shipping) <= 1
    assert all(line.amount_net + line.amount_tax == line.amount_total for line in order.lines)


def test_finnish_consumer() -> None:
    order = _order(_sample(samples.FI_CONSUMER))
    assert order.currency == "eur"
    assert order.created == datetime.fromtimestamp(NOW - 3600, tz=UTC)
    assert [(line.description, line.quantity, line.unit_amount, line.amount_tax, line.amount_total)
            for line in order.lines] == [
        ("Art print A3, Helsinki harbour", 2, 2490, 1270, 6250),
        ("Greeting card set (8)", 1, 1290, 329, 1619),
        ("Shipping", 1, 690, 176, 866),
    ]
    assert [line.is_shipping for line in order.lines] == [False, False, True]
    assert {line.tax_rate for line in order.lines} == {Decimal("25.5")}
    assert all(line.tax_inclusive is False and line.taxability_reason == "standard_rated" for line in order.lines)
    assert order.lines[0].product_id == "prod_SampleFi01"
    assert order.amount_total == 8735
    assert order.amount_tax == 1775
    assert order.amount_shipping == 690
    assert order.tax_from_stripe is True
    assert order.customer_name == "Aino Mäkinen"
    assert order.customer_email == "aino.makinen@example.fi"
    assert order.customer_phone == "+358401234567"
    assert order.customer_id == "cus_SampleFiAino"
    assert order.shipping_address is not None
    assert order.shipping_address.lines() == ["Aino Mäkinen", "Hämeenkatu 14 B 22", "33100 Tampere", "FI"]
    assert order.billing_address is not None and order.billing_address.city == "Tampere"
    assert order.locale == "fi"
    assert order.reference == "PK-1001"  # metadata.order_ref wins over client_reference_id
    assert order.metadata == {"order_ref": "PK-1001"}
    assert order.buyer_vat_id is None and order.tax_exempt == "none"


def test_swedish_customer_inclusive_tax() -> None:
    order = _order(_sample(samples.SE_CUSTOMER))
    assert order.currency == "sek"
    assert order.customer_name == "Åsa Öberg-Ståhl"
    assert order.recipient_name == "Åsa Öberg-Ståhl"
    assert order.locale == "sv"
    assert order.amount_total == 122700
    assert order.amount_tax == 24540
    assert [(line.amount_tax, line.amount_total) for line in order.lines] == [
        (15980, 79900), (6980, 34900), (1580, 7900),
    ]
    assert all(line.tax_inclusive is True and line.tax_rate == Decimal("25") for line in order.lines)


def test_german_b2b_reverse_charge() -> None:
    order = _order(_sample(samples.DE_REVERSE_CHARGE))
    assert order.buyer_vat_id == "DE813452675"
    assert vat.is_valid(order.buyer_vat_id)
    assert order.buyer_vat_id_type == "eu_vat"
    assert order.business_name == "Druckwerk Berlin GmbH"
    assert order.customer_name == "Jonas Weber"
    assert order.tax_exempt == "reverse"
    assert order.locale == "de"
    assert order.amount_tax == 0
    assert all(line.amount_tax == 0 for line in order.lines)
    assert {line.taxability_reason for line in order.lines} == {"reverse_charge"}
    assert {line.tax_rate for line in order.lines} == {Decimal("0")}
    assert order.tax_from_stripe is True  # Stripe Tax decided: reverse charge
    assert order.shipping_address is not None and order.shipping_address.line2 == "Hinterhaus, 3. OG"
    assert order.metadata["po_number"] == "4500-2231"


def test_japanese_order_zero_decimal() -> None:
    order = _order(_sample(samples.JP_YEN))
    assert order.currency == "jpy"
    assert order.locale == "ja"
    assert order.amount_total == 9100
    assert to_decimal(order.amount_total, order.currency) == Decimal("9100")
    assert [line.amount_total for line in order.lines] == [4800, 2500, 1800]
    assert order.lines[1].unit_amount == 1250 and order.lines[1].quantity == 2
    assert order.shipping_address is not None and order.shipping_address.state == "Tokyo"


def test_finnish_two_rates() -> None:
    order = _order(_sample(samples.FI_TWO_RATES))
    by_rate: dict[Decimal | None, int] = {}
    for line in order.lines:
        by_rate[line.tax_rate] = by_rate.get(line.tax_rate, 0) + line.amount_tax
    assert by_rate == {Decimal("14"): 559, Decimal("25.5"): 1015 + 150}
    assert order.lines[0].taxability_reason == "reduced_rated"
    assert order.reference == "cart-5530"
    assert order.customer_phone is None


def test_bare_payment_intent() -> None:
    sample = _sample(samples.NO_BARE_PI)
    order = _order(sample)
    assert order.checkout_session_id is None
    assert len(order.lines) == 1
    line = order.lines[0]
    assert (line.description, line.quantity, line.amount_total, line.amount_tax) == (
        "Poster print 50x70 cm, matte", 1, 64900, 0)
    assert line.tax_rate is None and not line.is_shipping
    assert order.tax_from_stripe is False
    assert order.customer_email == "kari.nordmann@example.no"  # receipt_email (customer has none)
    assert order.customer_name == "Kari Nordmann"
    assert order.customer_phone == "+4791234567"
    assert order.locale == "nb"  # customer.preferred_locales
    assert order.shipping_address is not None
    assert (order.shipping_address.city, order.shipping_address.country) == ("Oslo", "NO")
    assert order.reference == "PK-1006"


def test_bare_payment_intent_without_description() -> None:
    sample = _sample(samples.NO_BARE_PI)
    sample.payment_intent["description"] = None
    order = normalise(sample.payment_intent, None, [], None)
    assert order.lines[0].description == f"Order {samples.NO_BARE_PI}"
    assert order.locale is None
    assert order.customer_name == "Kari Nordmann"  # from PI.shipping.name


def test_danish_order_without_stripe_tax() -> None:
    order = _order(_sample(samples.DK_NO_TAX))
    assert order.tax_from_stripe is False
    assert order.amount_tax == 0
    assert all(line.tax_rate is None and line.amount_tax == 0 for line in order.lines)
    assert order.lines[-1].is_shipping and order.lines[-1].amount_total == 4900
    assert order.locale == "da"


def test_french_promotion_spread_over_lines() -> None:
    order = _order(_sample(samples.FR_PROMO))
    assert order.amount_discount == 398
    assert [line.amount_discount for line in order.lines] == [299, 99, 0]
    assert [line.amount_total for line in order.lines] == [3229, 1069, 588]
    assert order.reference == "cart-fr-8812"  # no order_ref: client_reference_id
    assert order.customer_name == "Élodie Dupré"


def test_older_payload_with_top_level_shipping_details() -> None:
    sample = _sample(samples.FI_CONSUMER)
    basil = _order(copy.deepcopy(sample)).shipping_address
    details = sample.session["collected_information"].pop("shipping_details")  # type: ignore[index]
    sample.session["shipping_details"] = details  # type: ignore[index]
    assert _order(sample).shipping_address == basil


def test_collected_information_wins_over_older_field() -> None:
    sample = _sample(samples.FI_CONSUMER)
    sample.session["shipping_details"] = {  # type: ignore[index]
        "name": "Old", "address": {"line1": "Vanha 1", "postal_code": "00100", "city": "Helsinki", "country": "FI"}}
    address = _order(sample).shipping_address
    assert address is not None and address.line1 == "Hämeenkatu 14 B 22"


def test_missing_email_and_shipping_do_not_fail() -> None:
    sample = _sample(samples.FI_CONSUMER)
    session: dict[str, Any] = sample.session  # type: ignore[assignment]
    session["customer_details"]["email"] = None
    session["collected_information"]["shipping_details"] = None
    order = normalise(sample.payment_intent, session, sample.line_items, None)
    assert order.customer_email is None
    assert order.shipping_address is None
    assert order.lines_total() == order.amount_total


def test_all_null_address_is_none() -> None:
    sample = _sample(samples.FI_CONSUMER)
    empty = {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}
    sample.session["customer_details"]["address"] = empty  # type: ignore[index]
    sample.session["collected_information"]["shipping_details"] = {"name": "x", "address": empty}  # type: ignore[index]
    order = normalise(sample.payment_intent, sample.session, sample.line_items, None)
    assert order.billing_address is None
    assert order.shipping_address is None


def test_country_codes_upper_case() -> None:
    sample = _sample(samples.DK_NO_TAX)
    sample.session["collected_information"]["shipping_details"]["address"]["country"] = "dk"  # type: ignore[index]
    sample.session["customer_details"]["address"]["country"] = "dk"  # type: ignore[index]
    order = _order(sample)
    assert order.shipping_address is not None and order.shipping_address.country == "DK"
    assert order.billing_address is not None and order.billing_address.country == "DK"
    assert order.country == "DK"


def test_currency_lower_case() -> None:
    sample = _sample(samples.FI_CONSUMER)
    sample.payment_intent["currency"] = "EUR"
    assert _order(sample).currency == "eur"


def test_customer_fallbacks() -> None:
    sample = _sample(samples.FI_CONSUMER)
    session: dict[str, Any] = sample.session  # type: ignore[assignment]
    session["customer_details"] = None
    session["locale"] = None
    customer = dict(sample.customer or {}, phone="+358501112222")
    order = normalise(sample.payment_intent, session, sample.line_items, customer)
    assert order.customer_email == "aino.makinen@example.fi"
    assert order.customer_name == "Aino Mäkinen"
    assert order.customer_phone == "+358501112222"
    assert order.locale == "fi"  # customer.preferred_locales[0]
    assert order.billing_address is None


def test_receipt_email_is_the_last_resort() -> None:
    sample = _sample(samples.FI_CONSUMER)
    sample.session["customer_details"]["email"] = None  # type: ignore[index]
    sample.payment_intent["receipt_email"] = "receipt@example.fi"
    assert normalise(sample.payment_intent, sample.session, sample.line_items, None).customer_email == \
        "receipt@example.fi"


def test_deleted_customer_is_ignored() -> None:
    sample = _sample(samples.NO_BARE_PI)
    order = normalise(sample.payment_intent, None, [], {"id": "cus_SampleNoKari", "object": "customer",
                                                         "deleted": True})
    assert order.locale is None
    assert order.customer_id == "cus_SampleNoKari"


def test_vat_id_preference_keeps_type() -> None:
    sample = _sample(samples.DE_REVERSE_CHARGE)
    sample.session["customer_details"]["tax_ids"] = [  # type: ignore[index]
        {"type": "unknown", "value": "123"}, {"type": "gb_vat", "value": "gb 980 7806 84"},
    ]
    order = _order(sample)
    assert (order.buyer_vat_id, order.buyer_vat_id_type) == ("GB980780684", "gb_vat")


def test_no_vat_id_when_only_other_tax_ids() -> None:
    sample = _sample(samples.DE_REVERSE_CHARGE)
    sample.session["customer_details"]["tax_ids"] = [{"type": "us_ein", "value": "12-3456789"}]  # type: ignore[index]
    order = _order(sample)
    assert order.buyer_vat_id is None and order.buyer_vat_id_type is None


def test_expanded_product_objects() -> None:
    sample = _sample(samples.FI_CONSUMER)
    products = {p["id"]: p for p in sample.products}
    for item in sample.line_items:
        item["price"]["product"] = products[item["price"]["product"]]
        item["description"] = None
    order = _order(sample)
    assert order.lines[0].product_id == "prod_SampleFi01"
    assert order.lines[0].description == "Art print A3, Helsinki harbour"  # product name


def test_line_items_without_expanded_taxes() -> None:
    sample = _sample(samples.FI_CONSUMER)
    for item in sample.line_items:
        item.pop("taxes")
    order = _order(sample)
    assert order.lines[0].tax_rate is None
    assert order.lines[0].amount_tax == 1270
    assert order.tax_from_stripe is True  # amount_tax says so


def test_free_shipping_adds_no_line() -> None:
    sample = _sample(samples.DK_NO_TAX)
    session: dict[str, Any] = sample.session  # type: ignore[assignment]
    session["shipping_cost"] = {"amount_subtotal": 0, "amount_tax": 0, "amount_total": 0, "shipping_rate": None}
    session["amount_total"] = sample.payment_intent["amount"] = sample.payment_intent["amount_received"] = 49800
    order = _order(sample)
    assert not any(line.is_shipping for line in order.lines)
    assert order.lines_total() == 49800


def test_shipping_from_total_details_when_no_shipping_cost() -> None:
    sample = _sample(samples.DK_NO_TAX)
    sample.session["shipping_cost"] = None  # type: ignore[index]
    order = _order(sample)
    assert order.lines[-1].is_shipping and order.lines[-1].amount_total == 4900
    assert order.lines_total() == order.amount_total


def test_undistributed_discount_is_spread_over_product_lines() -> None:
    sample = _sample(samples.FI_CONSUMER)
    sample.payment_intent["amount_received"] = 8735 - 500  # a session-level discount not on the lines...
    sample.session["total_details"]["amount_discount"] = 500  # type: ignore[index]  # ...that Stripe reports
    order = _order(sample)
    assert order.amount_total == 8235
    assert order.lines_total() == 8235
    goods = [line for line in order.lines if not line.is_shipping]
    assert [line.amount_total for line in goods] == [6250 - 397, 1619 - 103]  # proportional, exact
    assert [line.amount_discount for line in goods] == [397, 103]
    assert order.lines[-1].amount_total == 866  # shipping untouched
    # the tax keeps its rate: 25.5 % of the new net
    first = goods[0]
    assert abs(first.amount_tax - round(first.amount_net * Decimal("0.255"))) <= 1


def test_reconcile_positive_difference_and_no_op() -> None:
    lines = _order(_sample(samples.DK_NO_TAX)).lines
    assert reconcile_lines(lines, 54700) == lines
    more = reconcile_lines(lines, 54710)
    assert sum(line.amount_total for line in more) == 54710
    assert more[0].amount_total == 49810 and more[0].amount_discount == -10


def test_session_without_line_items_falls_back_to_one_line() -> None:
    sample = _sample(samples.DK_NO_TAX)
    sample.session["shipping_cost"] = None  # type: ignore[index]
    sample.session["total_details"]["amount_shipping"] = 0  # type: ignore[index]
    sample.payment_intent["description"] = "Posters"
    order = normalise(sample.payment_intent, sample.session, [], None)
    assert [(line.description, line.amount_total) for line in order.lines] == [("Posters", 54700)]


def test_lines_that_do_not_add_up_to_the_charge_stop_the_order_with_a_clear_message() -> None:
    from orderpipe.errors import OrderDataError

    sample = _sample(samples.FI_CONSUMER)
    sample.session["shipping_cost"]["amount_total"] = 1117121693  # type: ignore[index]  # Stripe's own fixture
    sample.session["shipping_cost"]["amount_subtotal"] = 1117121693  # type: ignore[index]
    with pytest.raises(OrderDataError, match="lines and shipping come to .* was charged"):
        _order(sample)
    sample = _sample(samples.FI_CONSUMER)
    sample.payment_intent["amount_received"] = 8735 - 500  # a partial capture nobody reported as a discount
    with pytest.raises(OrderDataError, match="nothing was fulfilled"):
        _order(sample)
    sample = _sample(samples.FI_CONSUMER)
    sample.payment_intent["amount_received"] = 8735 - 1  # rounding: fine, spread exactly
    assert _order(sample).lines_total() == 8734
