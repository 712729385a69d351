"""The invoice maths: Stripe's amounts in, an invoice that adds up to the charge out."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderpipe.errors import OrderDataError
from orderpipe.invoicing.document import (
    InvoiceDocument,
    TaxCategory,
    build_invoice,
    en16931_amounts,
    is_valid_eu_vat,
    largest_remainder,
)
from orderpipe.order import Address, Order
from tests.unit.invoice_samples import (
    FI_RATE,
    ISSUE_DATE,
    SELLER,
    Item,
    carts,
    consumer_fi,
    inclusive_no_stripe_tax,
    jpy_order,
    kwd_order,
    make_order,
    reverse_charge_de,
    two_rates,
)


def invoice(order: Order, default_vat_rate: Decimal = FI_RATE) -> InvoiceDocument:
    return build_invoice(order, SELLER, number="2026-000001", issue_date=ISSUE_DATE, default_vat_rate=default_vat_rate)


def assert_adds_up(order: Order, doc: InvoiceDocument) -> None:
    assert doc.payable == order.amount_total
    assert sum(line.net for line in doc.lines) == doc.line_extension == doc.tax_exclusive
    assert all(line.net + line.tax == line.gross for line in doc.lines)
    assert sum(s.tax for s in doc.tax_subtotals) == doc.tax_total
    assert sum(s.taxable for s in doc.tax_subtotals) == doc.line_extension
    assert doc.line_extension + doc.tax_total == doc.tax_inclusive == doc.payable
    keys = [(s.category, s.rate) for s in doc.tax_subtotals]
    assert len(keys) == len(set(keys)), "one subtotal per category and rate"
    for sub in doc.tax_subtotals:
        members = [line for line in doc.lines if (line.category, line.rate) == (sub.category, sub.rate)]
        assert sum(m.net for m in members) == sub.taxable
        assert sum(m.tax for m in members) == sub.tax


def assert_en16931_sums(doc: InvoiceDocument) -> None:
    """The figures UBL reports obey BR-DEC, BR-CO-10/14/15/16 and BR-CO-17's tolerance."""
    rep = en16931_amounts(doc)
    assert rep.decimals <= 2
    assert sum(line.net for line in rep.lines) == rep.line_extension
    assert sum(s.tax for s in rep.subtotals) == rep.tax_total
    assert sum(s.taxable for s in rep.subtotals) == rep.line_extension
    assert rep.line_extension + rep.tax_total == rep.tax_inclusive
    assert rep.tax_inclusive + rep.rounding == rep.payable
    # PayableAmount is the charge itself
    assert Decimal(rep.payable).scaleb(-rep.decimals) == Decimal(doc.payable).scaleb(-doc.exponent)
    unit = 10**rep.decimals
    for sub, r in zip(doc.tax_subtotals, rep.subtotals, strict=True):
        if sub.rate == 0:
            assert r.tax == 0
        else:
            assert abs(Decimal(r.tax) - Decimal(r.taxable) * sub.rate / 100) < unit, (sub, r)


# ---- examples --------------------------------------------------------------------------------


def test_consumer_fi_takes_stripes_tax() -> None:
    order = consumer_fi()
    doc = invoice(order)
    assert_adds_up(order, doc)
    assert [line.tax for line in doc.lines] == [line.amount_tax for line in order.lines]
    assert [(s.category, s.rate) for s in doc.tax_subtotals] == [(TaxCategory.STANDARD, Decimal("25.5"))]
    assert doc.tax_total == order.amount_tax
    assert doc.buyer.vat_id is None and doc.buyer.name == "Anna Virtanen"
    assert not doc.reverse_charge and doc.notes == []


def test_b2b_other_eu_country_is_an_intra_community_supply() -> None:
    order = reverse_charge_de()
    doc = invoice(order)
    assert_adds_up(order, doc)
    assert doc.reverse_charge
    assert [(s.category, s.rate, s.tax) for s in doc.tax_subtotals] == [(TaxCategory.INTRA_COMMUNITY, Decimal(0), 0)]
    sub = doc.tax_subtotals[0]
    assert sub.exemption_reason_code == "VATEX-EU-IC" and "2006/112/EC" in (sub.exemption_reason or "")
    assert doc.buyer.vat_id == "DE136695976" and doc.buyer.name == "Druckerei Groß GmbH"
    assert doc.seller.vat_id == "FI12345671"  # both VAT ids (BR-IC-02)
    assert doc.delivery is not None and doc.delivery.country == "DE"  # BR-IC-12


def test_intra_community_inferred_from_zero_stripe_tax_and_valid_eu_vat_id() -> None:
    order = make_order(
        [Item("Poster", 4990, 2, Decimal(0))], tax_from_stripe=True, buyer_vat_id="ATU13585627",
        business_name="Wien GmbH", address=Address(line1="Ring 1", postal_code="1010", city="Wien", country="AT"),
    )
    doc = invoice(order)
    assert doc.reverse_charge and doc.tax_subtotals[0].category is TaxCategory.INTRA_COMMUNITY


@pytest.mark.parametrize(
    "vat_id",
    [
        "FI12345671",  # the seller's own country: domestic, never reverse charge
        "DE123456789",  # wrong check digit
        "GB123456789",  # not an EU member state
    ],
)
def test_zero_tax_without_a_qualifying_vat_id_is_zero_rated(vat_id: str) -> None:
    order = make_order([Item("Poster", 4990, 1, Decimal(0))], tax_from_stripe=True, buyer_vat_id=vat_id)
    doc = invoice(order)
    assert not doc.reverse_charge
    assert [(s.category, s.rate) for s in doc.tax_subtotals] == [(TaxCategory.ZERO_RATED, Decimal(0))]
    assert doc.tax_subtotals[0].exemption_reason is None


def test_tax_charged_despite_eu_vat_id_stays_standard_rated() -> None:
    order = make_order([Item("Poster", 4990, 1, FI_RATE)], buyer_vat_id="DE136695976")
    doc = invoice(order)
    assert not doc.reverse_charge and doc.tax_subtotals[0].category is TaxCategory.STANDARD


def test_reverse_charge_without_buyer_vat_id_is_an_order_data_error() -> None:
    order = make_order([Item("Poster", 4990, 1, Decimal(0), reason="reverse_charge")], tax_from_stripe=True,
                       tax_exempt="reverse", order_id="pi_rc_novat")
    with pytest.raises(OrderDataError, match="pi_rc_novat.*invoice.*reverse charge"):
        invoice(order)


def test_exempt_customer_gets_category_e_with_reason() -> None:
    order = make_order([Item("Poster", 4990, 1, Decimal(0), reason="customer_exempt")], tax_from_stripe=True,
                       tax_exempt="exempt")
    doc = invoice(order)
    (sub,) = doc.tax_subtotals
    assert sub.category is TaxCategory.EXEMPT and sub.rate == 0 and sub.exemption_reason


def test_two_rates_give_two_subtotals() -> None:
    order = two_rates()
    doc = invoice(order)
    assert_adds_up(order, doc)
    assert {(s.category, s.rate) for s in doc.tax_subtotals} == {
        (TaxCategory.STANDARD, Decimal("25.5")),
        (TaxCategory.STANDARD, Decimal(14)),
    }
    assert_en16931_sums(doc)


def test_shipping_without_tax_is_zero_rated_next_to_taxed_goods() -> None:
    order = make_order([Item("Juliste", 2990, 1, FI_RATE), Item("Toimitus", 590, 1, Decimal(0), shipping=True)])
    doc = invoice(order)
    assert_adds_up(order, doc)
    assert [(s.category, s.taxable, s.tax) for s in doc.tax_subtotals] == [
        (TaxCategory.STANDARD, 2990, 762),
        (TaxCategory.ZERO_RATED, 590, 0),
    ]


def test_jpy_zero_decimals() -> None:
    order = jpy_order()
    doc = invoice(order)
    assert_adds_up(order, doc)
    assert doc.exponent == 0 and doc.currency == "JPY"
    assert en16931_amounts(doc).decimals == 0
    assert_en16931_sums(doc)


def test_jpy_per_line_rounding_beyond_tolerance_is_resplit_keeping_the_charge() -> None:
    # 9 lines of 105 yen + 10 %: Stripe rounds 10.5 up on each line, 99 yen tax on 945 net.
    order = make_order([Item(f"Sticker {i}", 105, 1, Decimal(10)) for i in range(9)], currency="jpy")
    assert order.amount_tax == 99
    doc = invoice(order)
    assert_adds_up(order, doc)
    assert doc.payable == order.amount_total == 1044
    assert (doc.line_extension, doc.tax_total) == (949, 95)
    assert_en16931_sums(doc)


def test_kwd_three_decimals_reported_at_two() -> None:
    order = kwd_order()
    doc = invoice(order)
    assert_adds_up(order, doc)
    assert doc.exponent == 3
    rep = en16931_amounts(doc)
    assert rep.decimals == 2
    assert rep.payable == 775  # 7.750 KWD charged -> 7.75
    assert rep.tax_total == 75
    assert_en16931_sums(doc)


def test_no_tax_from_stripe_prices_include_default_vat() -> None:
    order = inclusive_no_stripe_tax()
    doc = invoice(order)
    assert_adds_up(order, doc)
    assert doc.prices_include_vat
    gross = order.amount_total  # 112.60
    assert doc.line_extension == round(Decimal(gross) * 100 / Decimal("125.5")) == 8972
    assert doc.tax_total == gross - 8972
    assert [(s.category, s.rate) for s in doc.tax_subtotals] == [(TaxCategory.STANDARD, FI_RATE)]


def test_no_tax_from_stripe_with_another_default_rate() -> None:
    order = make_order([Item("Poster", 10000, 1, None)], tax_from_stripe=False)
    doc = invoice(order, default_vat_rate=Decimal(24))
    assert (doc.line_extension, doc.tax_total) == (8065, 1935)
    assert doc.tax_subtotals[0].rate == 24


def test_only_the_order_tax_total_known_is_spread_over_the_lines() -> None:
    order = make_order([Item("Poster", 4000, 1, FI_RATE), Item("Kehys", 2000, 1, FI_RATE)])
    bare = order.model_copy(
        update={"lines": [line.model_copy(update={"amount_tax": 0, "tax_rate": None}) for line in order.lines]}
    )
    doc = invoice(bare)
    assert_adds_up(bare, doc)
    assert doc.tax_total == order.amount_tax
    assert doc.tax_subtotals[0].rate == FI_RATE


def test_lines_not_adding_up_to_the_charge_are_refused() -> None:
    order = consumer_fi().model_copy(update={"amount_total": 1, "order_id": "pi_bad_sum"})
    with pytest.raises(OrderDataError, match="pi_bad_sum.*charged 1"):
        invoice(order)


def test_valid_eu_vat_ids() -> None:
    assert is_valid_eu_vat("DE136695976")
    assert is_valid_eu_vat("fi 1234567-1")
    assert is_valid_eu_vat("EL094259216")
    assert not is_valid_eu_vat("DE123456789")
    assert not is_valid_eu_vat("GB123456789")
    assert not is_valid_eu_vat(None)


@pytest.mark.parametrize(
    ("total", "weights", "parts"),
    [(10, [1, 1, 1], [4, 3, 3]), (0, [5, 7], [0, 0]), (7, [0, 0], [4, 3]), (100, [3, 0, 1], [75, 0, 25])],
)
def test_largest_remainder(total: int, weights: list[int], parts: list[int]) -> None:
    assert largest_remainder(total, weights) == parts


# ---- properties ------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(carts(), st.sampled_from([Decimal("25.5"), Decimal(24), Decimal(10), Decimal(0)]))
def test_invoice_always_adds_up_to_the_charge(order: Order, default_rate: Decimal) -> None:
    doc = invoice(order, default_vat_rate=default_rate)
    assert_adds_up(order, doc)
    assert_en16931_sums(doc)
    if order.tax_exempt == "reverse":
        assert doc.reverse_charge and doc.tax_total == 0
    if order.tax_from_stripe and not doc.reverse_charge:
        # Stripe's tax is kept unless EN 16931's tolerance forced a re-split of a group
        for sub in doc.tax_subtotals:
            stripe_tax = sum(
                src.amount_tax
                for src, line in zip(order.lines, doc.lines, strict=True)
                if (line.category, line.rate) == (sub.category, sub.rate)
            )
            assert abs(sub.tax - stripe_tax) <= max(1, len(order.lines)) * 10**doc.exponent
