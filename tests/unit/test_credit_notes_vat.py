"""Credit notes split refunds exactly; VAT category and rate by buyer; Peppol ids from VAT ids."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orderpipe.errors import PermanentError
from orderpipe.invoicing.credit_note import RefundExceedsInvoice, build_credit_note, parts_of, refundable, split_refund
from orderpipe.invoicing.document import InvoiceDocument, TaxCategory, build_invoice
from orderpipe.invoicing.seller import Seller
from orderpipe.invoicing.vat import BuyerKind, Endpoint, check_vat_id, peppol_endpoint, vat_treatment
from orderpipe.order import Address, Order
from tests.unit.invoice_samples import FI_RATE, ISSUE_DATE, SELLER, Item, carts, make_order

DE = Address(name="Jürgen Groß", line1="Hauptstraße 5", postal_code="10115", city="Berlin", country="DE")
US = Address(name="Jane Doe", line1="1 Main St", postal_code="10001", city="New York", country="US")
NO = Address(name="Ola Nordmann", line1="Karl Johans gate 1", postal_code="0154", city="Oslo", country="NO")


def invoice(order: Order, seller: Seller = SELLER) -> InvoiceDocument:
    return build_invoice(order, seller, number="2026-000001", issue_date=ISSUE_DATE, default_vat_rate=FI_RATE)


@st.composite
def invoiced_carts(draw: st.DrawFn) -> InvoiceDocument:
    order = draw(carts())
    if order.currency == "eur" and draw(st.booleans()):
        order = order.model_copy(update={"currency": "sek"})
    return invoice(order)


def assert_credit_note_adds_up(cn: InvoiceDocument, amount: int) -> None:
    assert cn.payable == amount
    assert sum(s.tax for s in cn.tax_subtotals) == cn.tax_total
    assert sum(s.taxable for s in cn.tax_subtotals) == cn.line_extension == sum(ln.net for ln in cn.lines)
    assert cn.line_extension + cn.tax_total == amount == cn.tax_inclusive
    assert all(ln.net + ln.tax == ln.gross and ln.net >= 0 and ln.tax >= 0 for ln in cn.lines)
    assert all(s.taxable >= 0 and s.tax >= 0 for s in cn.tax_subtotals)


# ---- the refund split --------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(inv=invoiced_carts(), data=st.data())
def test_refunds_split_exactly_and_never_exceed_the_invoice(inv: InvoiceDocument, data: st.DataObject) -> None:
    step = 10 if inv.currency == "KWD" else 1
    credited = []
    tax_credited = 0
    for i in range(data.draw(st.integers(1, 4))):
        left = refundable(inv, credited)
        if left < step:
            break
        amount = data.draw(st.integers(1, left // step)) * step
        cn = build_credit_note(inv, amount, number=f"CN-2026-{i:06d}", issue_date=ISSUE_DATE, refund_id=f"re_{i}",
                               credited=credited)
        assert_credit_note_adds_up(cn, amount)
        assert cn.billing_reference == inv.number and cn.is_credit_note
        credited += parts_of(cn)
        tax_credited += cn.tax_total
    left = refundable(inv, credited)
    if left:
        cn = build_credit_note(inv, left, number="CN-2026-999998", issue_date=ISSUE_DATE, refund_id="re_last",
                               credited=credited)
        assert_credit_note_adds_up(cn, left)
        credited += parts_of(cn)
        tax_credited += cn.tax_total
    # fully refunded: the credit notes add up to the invoice, tax included, per VAT group
    assert refundable(inv, credited) == 0
    assert tax_credited == inv.tax_total
    with pytest.raises(RefundExceedsInvoice):
        split_refund(inv, 1, credited=credited)


def test_partial_refund_over_two_rates_in_proportion() -> None:
    order = make_order([Item("Kirja", 10000, 1, Decimal(14)), Item("Juliste", 10000, 1, FI_RATE)])
    inv = invoice(order)  # 114.00 + 125.50
    parts = split_refund(inv, 10000)
    assert sorted((p.rate, p.amount) for p in parts) == [(Decimal(14), 4760), (Decimal("25.5"), 5240)]
    assert all(p.taxable + p.tax == p.amount for p in parts)
    assert sum(p.amount for p in parts) == 10000


def test_refund_larger_than_what_is_left_is_a_clear_permanent_error() -> None:
    inv = invoice(make_order([Item("Juliste", 4990, 1, FI_RATE, inclusive=True)]))
    first = build_credit_note(inv, 3000, number="CN-2026-000001", issue_date=ISSUE_DATE, refund_id="re_1")
    with pytest.raises(RefundExceedsInvoice, match="more than the 19.90 EUR left to refund"):
        build_credit_note(inv, 2000, number="CN-2026-000002", issue_date=ISSUE_DATE, refund_id="re_2",
                          credited=parts_of(first))
    with pytest.raises(RefundExceedsInvoice):
        split_refund(inv, 4991)
    with pytest.raises(PermanentError, match="must be positive"):
        split_refund(inv, 0)


def test_full_refund_mirrors_the_invoice_lines() -> None:
    inv = invoice(make_order([Item("Juliste", 2990, 2, FI_RATE), Item("Toimitus", 590, 1, FI_RATE, shipping=True)]))
    cn = build_credit_note(inv, inv.payable, number="CN-2026-000001", issue_date=ISSUE_DATE, refund_id="re_1",
                           language="fi")
    assert [(ln.description, ln.quantity, ln.net, ln.tax) for ln in cn.lines] == [
        (ln.description, ln.quantity, ln.net, ln.tax) for ln in inv.lines]
    assert cn.tax_total == inv.tax_total and cn.language == "fi"


# ---- VAT category and rate for every buyer kind in the contract's table ----------------------------

CASES = [
    # (name, address, vat id, oss, kind, category, rate)
    ("FI consumer", None, None, True, BuyerKind.DOMESTIC, TaxCategory.STANDARD, Decimal("25.5")),
    ("FI business", None, "FI12345671", True, BuyerKind.DOMESTIC, TaxCategory.STANDARD, Decimal("25.5")),
    ("DE consumer, OSS", DE, None, True, BuyerKind.EU_CONSUMER, TaxCategory.STANDARD, Decimal(19)),
    ("DE consumer, no OSS", DE, None, False, BuyerKind.EU_CONSUMER, TaxCategory.STANDARD, Decimal("25.5")),
    ("DE business", DE, "DE136695976", True, BuyerKind.EU_BUSINESS, TaxCategory.INTRA_COMMUNITY, Decimal(0)),
    ("DE bad check digit", DE, "DE136695975", True, BuyerKind.EU_CONSUMER, TaxCategory.STANDARD, Decimal(19)),
    ("US consumer", US, None, True, BuyerKind.EXPORT, TaxCategory.EXPORT, Decimal(0)),
    ("NO business", NO, "NO974760673MVA", True, BuyerKind.EXPORT, TaxCategory.EXPORT, Decimal(0)),
]


@pytest.mark.parametrize(("name", "address", "vat_id", "oss", "kind", "category", "rate"), CASES,
                         ids=[c[0] for c in CASES])
def test_vat_category_and_rate_by_buyer(name: str, address: Address | None, vat_id: str | None, oss: bool,
                                        kind: BuyerKind, category: TaxCategory, rate: Decimal) -> None:
    seller = SELLER.model_copy(update={"oss": oss})
    order = make_order([Item("Juliste", 11950, 1, None)], tax_from_stripe=False, buyer_vat_id=vat_id,
                       address=address or Address(line1="Katu 1", postal_code="00100", city="Helsinki", country="FI"),
                       business_name="Firma" if vat_id else None)
    treatment = vat_treatment(order, seller, default_vat_rate=FI_RATE, oss=oss)
    assert (treatment.kind, treatment.category, treatment.rate) == (kind, category, rate)
    doc = invoice(order, seller)
    (sub,) = doc.tax_subtotals
    assert (sub.category, sub.rate) == (category, rate)
    assert doc.payable == 11950 and sub.taxable + sub.tax == 11950
    if rate:
        assert sub.tax == 11950 - round(Decimal(11950) * 100 / (100 + rate))
    expected_code = {TaxCategory.INTRA_COMMUNITY: "VATEX-EU-IC", TaxCategory.EXPORT: "VATEX-EU-G"}.get(category)
    assert sub.exemption_reason_code == expected_code
    if name == "DE bad check digit":
        assert doc.buyer.vat_id is None and any("DE136695975" in n for n in doc.vat_notes)
    if category is TaxCategory.INTRA_COMMUNITY:
        assert doc.buyer.vat_id == vat_id and doc.seller.vat_id == "FI12345671" and doc.peppol


def test_stripe_tax_stands_for_an_eu_consumer() -> None:
    order = make_order([Item("Poster", 10000, 1, Decimal(19))], address=DE)
    (sub,) = invoice(order).tax_subtotals
    assert (sub.category, sub.rate, sub.tax) == (TaxCategory.STANDARD, Decimal(19), 1900)


# ---- VAT ids and Peppol endpoints -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("vat_id", "valid"),
    [("DE136695976", True), ("DE136695975", False), ("fi 1234567-1", True), ("ATU13585627", True),
     ("EL094259216", True), ("BE0403019261", True), ("NO974760673MVA", True), ("XX123", False), ("123", False)],
)
def test_vat_ids_are_checked_with_stdnum(vat_id: str, valid: bool) -> None:
    assert check_vat_id(vat_id).valid is valid


@pytest.mark.parametrize(
    ("vat_id", "scheme", "value"),
    [("FI12345671", "0213", "FI12345671"), ("DE136695976", "9930", "DE136695976"),
     ("BE0403019261", "0208", "0403019261"), ("SE556036079301", "0007", "5560360793"),
     ("DK13585628", "0184", "13585628"), ("NO974760673MVA", "0192", "974760673"),
     ("EL094259216", "9933", "EL094259216")],
)
def test_endpoint_scheme_from_the_eas_list(vat_id: str, scheme: str, value: str) -> None:
    assert peppol_endpoint(vat_id) == Endpoint(scheme=scheme, value=value)


def test_seller_endpoint_setting_overrides_the_vat_id() -> None:
    seller = SELLER.model_copy(update={"endpoint": "0037:003712345671"})
    doc = invoice(make_order([Item("Poster", 4990, 1, Decimal(0))], tax_from_stripe=True, address=DE,
                             buyer_vat_id="DE136695976", business_name="Druckerei"), seller)
    assert doc.seller_endpoint == Endpoint(scheme="0037", value="003712345671")
    assert doc.buyer_endpoint == Endpoint(scheme="9930", value="DE136695976")
