"""Invoices and credit notes as UBL 2.1 ``Invoice`` / ``CreditNote`` documents.

EN 16931 core for consumers (CEN's official rules check them in the tests); for a business
buyer with a Peppol endpoint (``doc.peppol``) Peppol BIS Billing 3.0: its
``CustomizationID`` and ``ProfileID`` and both parties' ``cbc:EndpointID`` (checked against
OpenPeppol's rules as well). A credit note carries ``CreditNoteTypeCode`` 381 and
``cac:BillingReference`` to the invoice it credits; its amounts are positive.
"""

from __future__ import annotations

import re
from decimal import Decimal

from lxml import etree

from orderpipe.invoicing.document import (
    Endpoint,
    InvoiceDocument,
    InvoiceParty,
    TaxCategory,
    en16931_amounts,
    format_rate,
    reported_decimal,
)

NS_INVOICE = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
NS_CREDIT_NOTE = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
NS_CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
NS_CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
NSMAP = {None: NS_INVOICE, "cac": NS_CAC, "cbc": NS_CBC}
CUSTOMIZATION_ID = "urn:cen.eu:en16931:2017"
PEPPOL_CUSTOMIZATION_ID = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
PEPPOL_PROFILE_ID = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
INVOICE_TYPE_COMMERCIAL = "380"  # UNCL1001
CREDIT_NOTE_TYPE = "381"  # UNCL1001 "Credit note"
PAYMENT_MEANS_BANK_CARD = "48"  # UNCL4461 "Bank card"
UNIT_ONE = "C62"  # UN/ECE Rec 20 "one"


def _cac(parent: etree._Element, name: str) -> etree._Element:
    return etree.SubElement(parent, f"{{{NS_CAC}}}{name}")


# Characters XML 1.0 cannot carry (control characters a product name might hold).
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _cbc(parent: etree._Element, tag: str, text: str, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, f"{{{NS_CBC}}}{tag}", attrs)
    el.text = _NOT_XML.sub("", text)
    return el


class _Amounts:
    def __init__(self, currency: str, decimals: int) -> None:
        self.currency = currency
        self.decimals = decimals

    def text(self, amount: int) -> str:
        return str(reported_decimal(amount, self.decimals))

    def add(self, parent: etree._Element, name: str, amount: int) -> etree._Element:
        return _cbc(parent, name, self.text(amount), currencyID=self.currency)


def _party(parent: etree._Element, role: str, party: InvoiceParty, *, endpoint: Endpoint | None = None,
           legal_id: str | None = None) -> None:
    p = _cac(_cac(parent, role), "Party")
    if endpoint is not None:
        _cbc(p, "EndpointID", endpoint.value, schemeID=endpoint.scheme)
    _cbc(_cac(p, "PartyName"), "Name", party.name)
    address = _cac(p, "PostalAddress")
    if party.street:
        _cbc(address, "StreetName", party.street)
    if party.street2:
        _cbc(address, "AdditionalStreetName", party.street2)
    if party.city:
        _cbc(address, "CityName", party.city)
    if party.postcode:
        _cbc(address, "PostalZone", party.postcode)
    _cbc(_cac(address, "Country"), "IdentificationCode", party.country)
    if party.vat_id:
        scheme = _cac(p, "PartyTaxScheme")
        _cbc(scheme, "CompanyID", party.vat_id)
        _cbc(_cac(scheme, "TaxScheme"), "ID", "VAT")
    legal = _cac(p, "PartyLegalEntity")
    _cbc(legal, "RegistrationName", party.name)
    if legal_id:
        _cbc(legal, "CompanyID", legal_id)
    if party.email:
        _cbc(_cac(p, "Contact"), "ElectronicMail", party.email)


def _tax_category(parent: etree._Element, element: str, category: TaxCategory, rate: Decimal) -> etree._Element:
    cat = _cac(parent, element)
    _cbc(cat, "ID", category.value)
    _cbc(cat, "Percent", format_rate(rate))
    return cat


def render_ubl(doc: InvoiceDocument) -> bytes:
    """UTF-8 UBL 2.1 Invoice (or CreditNote, for a credit note document) bytes."""
    reported = en16931_amounts(doc)
    money = _Amounts(doc.currency, reported.decimals)
    credit = doc.is_credit_note
    ns = NS_CREDIT_NOTE if credit else NS_INVOICE
    nsmap = {None: ns, "cac": NS_CAC, "cbc": NS_CBC}

    root = etree.Element(f"{{{ns}}}{'CreditNote' if credit else 'Invoice'}", nsmap=nsmap)  # type: ignore[arg-type]
    if doc.peppol:
        _cbc(root, "CustomizationID", PEPPOL_CUSTOMIZATION_ID)
        _cbc(root, "ProfileID", PEPPOL_PROFILE_ID)
    else:
        _cbc(root, "CustomizationID", CUSTOMIZATION_ID)
    _cbc(root, "ID", doc.number)
    _cbc(root, "IssueDate", doc.issue_date.isoformat())
    if credit:
        _cbc(root, "CreditNoteTypeCode", CREDIT_NOTE_TYPE)
    else:
        _cbc(root, "DueDate", doc.issue_date.isoformat())
        _cbc(root, "InvoiceTypeCode", INVOICE_TYPE_COMMERCIAL)
    notes = [n for n in doc.notes if n]
    if notes:  # Peppol R002: at most one note
        _cbc(root, "Note", " ".join(notes))
    _cbc(root, "DocumentCurrencyCode", doc.currency)
    _cbc(root, "BuyerReference", doc.order_reference or doc.order_id)
    if credit and doc.billing_reference:
        ref = _cac(_cac(root, "BillingReference"), "InvoiceDocumentReference")
        _cbc(ref, "ID", doc.billing_reference)
        if doc.billing_reference_date is not None:
            _cbc(ref, "IssueDate", doc.billing_reference_date.isoformat())

    peppol = doc.peppol
    _party(root, "AccountingSupplierParty", doc.seller, endpoint=doc.seller_endpoint if peppol else None)
    _party(root, "AccountingCustomerParty", doc.buyer, endpoint=doc.buyer_endpoint if peppol else None)

    if doc.delivery is not None and doc.delivery.country:
        delivery = _cac(root, "Delivery")
        _cbc(delivery, "ActualDeliveryDate", doc.order_date.date().isoformat())
        address = _cac(_cac(delivery, "DeliveryLocation"), "Address")
        if doc.delivery.line1:
            _cbc(address, "StreetName", doc.delivery.line1)
        if doc.delivery.line2:
            _cbc(address, "AdditionalStreetName", doc.delivery.line2)
        if doc.delivery.city:
            _cbc(address, "CityName", doc.delivery.city)
        if doc.delivery.postal_code:
            _cbc(address, "PostalZone", doc.delivery.postal_code)
        if doc.delivery.state:
            _cbc(address, "CountrySubentity", doc.delivery.state)
        _cbc(_cac(address, "Country"), "IdentificationCode", doc.delivery.country.upper())
        if doc.delivery.name:
            _cbc(_cac(_cac(delivery, "DeliveryParty"), "PartyName"), "Name", doc.delivery.name)

    means = _cac(root, "PaymentMeans")
    _cbc(means, "PaymentMeansCode", PAYMENT_MEANS_BANK_CARD, name="Card payment (Stripe)")
    _cbc(means, "PaymentID", doc.order_id)
    terms = _cac(root, "PaymentTerms")
    if credit:
        _cbc(terms, "Note", f"Refunded to the card used for order {doc.order_id}"
                            + (f" (refund {doc.refund_id})." if doc.refund_id else "."))
    else:
        _cbc(terms, "Note", f"Paid by card on {doc.order_date.date().isoformat()} (order {doc.order_id}).")

    tax_total = _cac(root, "TaxTotal")
    money.add(tax_total, "TaxAmount", reported.tax_total)
    for sub, rep in zip(doc.tax_subtotals, reported.subtotals, strict=True):
        st = _cac(tax_total, "TaxSubtotal")
        money.add(st, "TaxableAmount", rep.taxable)
        money.add(st, "TaxAmount", rep.tax)
        cat = _tax_category(st, "TaxCategory", sub.category, sub.rate)
        if sub.exemption_reason_code:
            _cbc(cat, "TaxExemptionReasonCode", sub.exemption_reason_code)
        if sub.exemption_reason:
            _cbc(cat, "TaxExemptionReason", sub.exemption_reason)
        _cbc(_cac(cat, "TaxScheme"), "ID", "VAT")

    totals = _cac(root, "LegalMonetaryTotal")
    money.add(totals, "LineExtensionAmount", reported.line_extension)
    money.add(totals, "TaxExclusiveAmount", reported.line_extension)
    money.add(totals, "TaxInclusiveAmount", reported.tax_inclusive)
    if reported.rounding:
        money.add(totals, "PayableRoundingAmount", reported.rounding)
    money.add(totals, "PayableAmount", reported.payable)

    for line, rep in zip(doc.lines, reported.lines, strict=True):
        il = _cac(root, "CreditNoteLine" if credit else "InvoiceLine")
        _cbc(il, "ID", str(line.line_id))
        _cbc(il, "CreditedQuantity" if credit else "InvoicedQuantity", str(line.quantity), unitCode=UNIT_ONE)
        money.add(il, "LineExtensionAmount", rep.net)
        item = _cac(il, "Item")
        _cbc(item, "Name", line.description[:200] or "Item")
        if line.product_id:
            _cbc(_cac(item, "SellersItemIdentification"), "ID", line.product_id)
        cat = _tax_category(item, "ClassifiedTaxCategory", line.category, line.rate)
        _cbc(_cac(cat, "TaxScheme"), "ID", "VAT")
        price = _cac(il, "Price")
        if rep.net % line.quantity == 0:
            money.add(price, "PriceAmount", rep.net // line.quantity)
        else:  # the net for the whole quantity, exact, rather than a rounded unit price
            money.add(price, "PriceAmount", rep.net)
            _cbc(price, "BaseQuantity", str(line.quantity), unitCode=UNIT_ONE)

    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
