"""Generated invoices and credit notes through the validators: EN 16931 for all, Peppol BIS 3.0 for B2B.

A modest, fixed set of documents (compiled stylesheets are reused across the module)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from orderpipe.invoicing.credit_note import build_credit_note
from orderpipe.invoicing.document import InvoiceDocument, build_invoice
from orderpipe.invoicing.ubl import NS_CAC, NS_CBC, PEPPOL_CUSTOMIZATION_ID, PEPPOL_PROFILE_ID, render_ubl
from orderpipe.order import Address, Order
from tests.en16931 import Rules, load_fatal_rules, load_peppol_fatal_rules
from tests.unit.invoice_samples import FI_RATE, ISSUE_DATE, SELLER, Item, make_order

NS = {"cac": NS_CAC, "cbc": NS_CBC}
BE = Address(name="Jan Peeters", line1="Wetstraat 1", postal_code="1000", city="Brussel", country="BE")
DE = Address(name="Jürgen Groß", line1="Hauptstraße 5", postal_code="10115", city="Berlin", country="DE")
SE = Address(name="Sven Svensson", line1="Drottninggatan 1", postal_code="11151", city="Stockholm", country="SE")
US = Address(name="Jane Doe", line1="1 Main St", postal_code="10001", city="New York", country="US")
FI = Address(name="Anna Virtanen", line1="Katu 1", postal_code="00100", city="Helsinki", country="FI")


def orders() -> dict[str, Order]:
    cart = [Item("Juliste A2", 2990, 2, None), Item("Toimitus", 590, 1, None, shipping=True)]
    return {
        "b2b_de_ic": make_order(cart, tax_from_stripe=False, address=DE, buyer_vat_id="DE136695976",
                                business_name="Druckerei Groß GmbH", order_id="pi_b2b_de"),
        "b2b_be_ic": make_order(cart, tax_from_stripe=False, address=BE, buyer_vat_id="BE0403019261",
                                business_name="Peeters NV", order_id="pi_b2b_be"),
        "b2b_se_ic_sek": make_order([Item("Affisch", 29900, 3, None)], currency="sek", tax_from_stripe=False,
                                    address=SE, buyer_vat_id="SE556036079301", business_name="Svensson AB",
                                    order_id="pi_b2b_se"),
        "b2b_fi_domestic": make_order(cart, tax_from_stripe=False, address=FI, buyer_vat_id="FI12345671",
                                      business_name="Kirjapaino Oy", order_id="pi_b2b_fi"),
        "b2c_de_oss": make_order(cart, tax_from_stripe=False, address=DE, order_id="pi_b2c_de"),
        "b2c_us_export_jpy": make_order([Item("Poster", 1980, 3, None)], currency="jpy", tax_from_stripe=False,
                                        address=US, order_id="pi_b2c_us"),
        "b2c_fi_kwd": make_order([Item("Poster", 5000, 1, Decimal(15)), Item("Sticker", 1000, 1, Decimal(0))],
                                 currency="kwd", address=FI, order_id="pi_b2c_kwd"),
    }


def documents() -> dict[str, InvoiceDocument]:
    out: dict[str, InvoiceDocument] = {}
    for name, order in orders().items():
        inv = build_invoice(order, SELLER, number="2026-000001", issue_date=ISSUE_DATE, default_vat_rate=FI_RATE)
        out[f"{name}-invoice"] = inv
        partial = inv.payable // 3 // 10 * 10 or 10
        out[f"{name}-credit"] = build_credit_note(inv, partial, number="CN-2026-000001", issue_date=ISSUE_DATE,
                                                  refund_id="re_1", language="de")
    return out  # 14 documents


DOCS = documents()


@pytest.fixture(scope="module")
def en16931() -> Rules:
    return load_fatal_rules()


@pytest.fixture(scope="module")
def peppol() -> Rules:
    return load_peppol_fatal_rules()


@pytest.mark.parametrize("name", list(DOCS))
def test_document_passes_en16931_and_b2b_passes_peppol(name: str, tmp_path: Path, en16931: Rules,
                                                       peppol: Rules) -> None:
    doc = DOCS[name]
    xml = render_ubl(doc)
    path = tmp_path / f"{name}.xml"
    path.write_bytes(xml)
    assert en16931(path) == []
    root = etree.fromstring(xml)
    b2b = name.startswith("b2b")
    assert doc.peppol is b2b
    if b2b:
        assert peppol(path) == []
        assert root.xpath("string(/*/cbc:CustomizationID)", namespaces=NS) == PEPPOL_CUSTOMIZATION_ID
        assert root.xpath("string(/*/cbc:ProfileID)", namespaces=NS) == PEPPOL_PROFILE_ID
        for party in ("AccountingSupplierParty", "AccountingCustomerParty"):
            endpoint = root.xpath(f"/*/cac:{party}/cac:Party/cbc:EndpointID", namespaces=NS)
            assert len(endpoint) == 1 and endpoint[0].get("schemeID") and endpoint[0].text
    if doc.is_credit_note:
        assert etree.QName(root).localname == "CreditNote"
        assert root.xpath("string(/*/cbc:CreditNoteTypeCode)", namespaces=NS) == "381"
        assert root.xpath("string(/*/cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID)",
                          namespaces=NS) == "2026-000001"
        assert len(root.xpath("/*/cac:CreditNoteLine", namespaces=NS)) == len(doc.lines)


def test_peppol_validator_is_not_vacuous(tmp_path: Path, peppol: Rules) -> None:
    """A B2B credit note without the buyer's EndpointID must fail Peppol R010."""
    xml = render_ubl(DOCS["b2b_de_ic-credit"])
    root = etree.fromstring(xml)
    (endpoint,) = root.xpath("/*/cac:AccountingCustomerParty/cac:Party/cbc:EndpointID", namespaces=NS)
    endpoint.getparent().remove(endpoint)
    path = tmp_path / "tampered.xml"
    path.write_bytes(etree.tostring(root))
    assert "PEPPOL-EN16931-R010" in [rid for rid, _ in peppol(path)]
