"""Every UBL invoice orderpipe writes passes CEN's official EN 16931 rules (no fatal rule)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from lxml import etree

from orderpipe.invoicing.document import InvoiceDocument, build_invoice
from orderpipe.invoicing.ubl import NS_CAC, NS_CBC, PEPPOL_CUSTOMIZATION_ID, render_ubl
from orderpipe.order import Order
from tests.en16931 import load_fatal_rules
from tests.unit.invoice_samples import FI_RATE, ISSUE_DATE, SELLER, Item, carts, make_order, sample_orders

NS = {"cac": NS_CAC, "cbc": NS_CBC}
SAMPLES = sample_orders()


@pytest.fixture(scope="module")
def fatal_rules() -> Callable[[Path], list[tuple[str, str]]]:
    return load_fatal_rules()


def invoice(order: Order) -> InvoiceDocument:
    return build_invoice(order, SELLER, number="2026-000042", issue_date=ISSUE_DATE, default_vat_rate=FI_RATE)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / f"{name}.xml"
    path.write_bytes(data)
    return path


def text(root: etree._Element, xpath: str) -> list[str]:
    return [el.text for el in root.xpath(xpath, namespaces=NS)]


@pytest.mark.parametrize("name", list(SAMPLES))
def test_sample_invoice_passes_en16931(name: str, tmp_path: Path, fatal_rules: Callable) -> None:
    order = SAMPLES[name]
    doc = invoice(order)
    xml = render_ubl(doc)
    assert fatal_rules(write(tmp_path, name, xml)) == []

    root = etree.fromstring(xml)
    expected_customization = PEPPOL_CUSTOMIZATION_ID if doc.peppol else "urn:cen.eu:en16931:2017"
    assert text(root, "/*/cbc:CustomizationID") == [expected_customization]
    assert text(root, "/*/cbc:ID") == ["2026-000042"]
    assert text(root, "/*/cbc:InvoiceTypeCode") == ["380"]
    assert text(root, "/*/cbc:DocumentCurrencyCode") == [order.currency.upper()]
    assert len(root.xpath("/*/cac:InvoiceLine", namespaces=NS)) == len(order.lines)
    subtotals = [
        (st.xpath("string(cac:TaxCategory/cbc:ID)", namespaces=NS),
         st.xpath("string(cac:TaxCategory/cbc:Percent)", namespaces=NS))
        for st in root.xpath("/*/cac:TaxTotal/cac:TaxSubtotal", namespaces=NS)
    ]
    assert len(subtotals) == len(set(subtotals)) == len(doc.tax_subtotals)
    payable = Decimal(text(root, "/*/cac:LegalMonetaryTotal/cbc:PayableAmount")[0])
    assert payable == Decimal(order.amount_total).scaleb(-doc.exponent), "PayableAmount is what Stripe charged"
    for amount in root.xpath("//*[@currencyID]", namespaces=NS):
        assert len(amount.text.partition(".")[2]) <= 2, f"{amount.tag} {amount.text}: at most 2 decimals"
        assert amount.get("currencyID") == order.currency.upper()


def test_consumer_has_no_buyer_vat_id(tmp_path: Path) -> None:
    root = etree.fromstring(render_ubl(invoice(SAMPLES["consumer_fi"])))
    assert text(root, "//cac:AccountingSupplierParty//cac:PartyTaxScheme/cbc:CompanyID") == ["FI12345671"]
    assert text(root, "//cac:AccountingCustomerParty//cac:PartyTaxScheme/cbc:CompanyID") == []
    assert text(root, "//cac:AccountingCustomerParty//cac:Country/cbc:IdentificationCode") == ["FI"]
    assert text(root, "//cac:TaxSubtotal/cac:TaxCategory/cbc:ID") == ["S"]
    assert text(root, "//cac:TaxSubtotal/cac:TaxCategory/cbc:Percent") == ["25.5"]


def test_intra_community_supply_has_both_vat_ids_category_k_and_reason() -> None:
    root = etree.fromstring(render_ubl(invoice(SAMPLES["reverse_charge_de"])))
    assert text(root, "//cac:AccountingCustomerParty//cac:PartyTaxScheme/cbc:CompanyID") == ["DE136695976"]
    assert text(root, "//cac:AccountingSupplierParty//cac:PartyTaxScheme/cbc:CompanyID") == ["FI12345671"]
    assert text(root, "//cac:TaxSubtotal/cac:TaxCategory/cbc:ID") == ["K"]
    assert text(root, "//cac:TaxSubtotal/cac:TaxCategory/cbc:TaxExemptionReasonCode") == ["VATEX-EU-IC"]
    assert set(text(root, "//cac:ClassifiedTaxCategory/cbc:ID")) == {"K"}
    assert text(root, "/*/cac:Delivery/cac:DeliveryLocation/cac:Address/cac:Country/cbc:IdentificationCode") == ["DE"]
    assert text(root, "/*/cac:TaxTotal/cbc:TaxAmount") == ["0.00"]


def test_two_rates_give_two_subtotals() -> None:
    root = etree.fromstring(render_ubl(invoice(SAMPLES["two_rates"])))
    assert sorted(text(root, "//cac:TaxSubtotal/cac:TaxCategory/cbc:Percent")) == ["14", "25.5"]


def test_jpy_amounts_have_no_decimals() -> None:
    root = etree.fromstring(render_ubl(invoice(SAMPLES["jpy"])))
    assert text(root, "//cac:LegalMonetaryTotal/cbc:PayableAmount") == ["7629"]
    assert all("." not in t for t in text(root, "//*[@currencyID]"))


def test_kwd_reported_at_two_decimals_with_payable_equal_to_the_charge() -> None:
    root = etree.fromstring(render_ubl(invoice(SAMPLES["kwd"])))
    assert text(root, "//cac:LegalMonetaryTotal/cbc:PayableAmount") == ["7.75"]
    assert text(root, "//cac:LegalMonetaryTotal/cbc:TaxInclusiveAmount") == ["7.75"]


def test_control_characters_and_consumer_without_address(tmp_path: Path, fatal_rules: Callable) -> None:
    order = make_order([Item("Juliste\x00\x0b 🎉", 2990, 1, FI_RATE)], address=None, customer_name=None)
    xml = render_ubl(invoice(order))
    assert fatal_rules(write(tmp_path, "odd", xml)) == []
    root = etree.fromstring(xml)
    assert text(root, "//cac:InvoiceLine/cac:Item/cbc:Name") == ["Juliste 🎉"]
    assert text(root, "//cac:AccountingCustomerParty//cac:PartyName/cbc:Name") == ["anna@example.fi"]
    # no address from Stripe: the seller's country stands in, as EN 16931 requires one (BR-11)
    assert text(root, "//cac:AccountingCustomerParty//cac:Country/cbc:IdentificationCode") == ["FI"]


def test_validator_is_not_vacuous(tmp_path: Path, fatal_rules: Callable) -> None:
    """A tampered total must be caught, or the checks above prove nothing."""
    xml = render_ubl(invoice(SAMPLES["consumer_fi"]))
    xml = xml.replace(b">110.69</cbc:PayableAmount>", b">110.70</cbc:PayableAmount>")
    assert b">110.70<" in xml
    rules = [rid for rid, _ in fatal_rules(write(tmp_path, "tampered", xml))]
    assert "BR-CO-16" in rules


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(order=carts())
def test_random_carts_pass_en16931(order: Order, tmp_path: Path, fatal_rules: Callable) -> None:
    path = write(tmp_path, "random", render_ubl(invoice(order)))
    assert fatal_rules(path) == []
