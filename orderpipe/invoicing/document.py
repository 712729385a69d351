"""The VAT invoice as data: pure maths from an order to an EN 16931 shaped document, no I/O.

All amounts are integers in the currency's Stripe minor units (``orderpipe.money``), so the
document adds up exactly: sum of line nets == tax exclusive total, sum of the per category
and rate tax subtotals == tax total, tax exclusive + tax == payable == what Stripe charged.

Where the VAT comes from:

* Stripe computed tax (``order.tax_from_stripe``): each line's net is
  ``amount_total - amount_tax``, its tax ``amount_tax``, its rate ``tax_rate``. Should a
  rate group's summed tax stray from ``taxable x rate`` by half a currency unit or more
  (many per-line roundings in a zero-decimal currency), the group is re-split like an
  inclusive price: its gross, and so the payable amount, stays what Stripe charged, and
  the invoice satisfies EN 16931's BR-CO-17 tolerance of one currency unit.
* No tax from Stripe: prices include ``default_vat_rate`` (or the line's own rate): per rate
  group ``net = round(gross * 100 / (100 + rate))``, ``tax = gross - net``, the net spread
  over the group's lines by largest remainder.

VAT categories follow the contract's table (``orderpipe.invoicing.vat``): by destination, S at the
seller's rate at home and at the destination's standard rate for EU consumers (one-stop
shop), K (intra-community supply, ``VATEX-EU-IC``, both VAT ids) for a business buyer with a
VAT id that passes its check digit in another member state, G (export, ``VATEX-EU-G``)
outside the EU. Where Stripe computed tax its amounts stand: a line Stripe taxed is S at
its rate; untaxed lines are K/G by the table, E (with a reason) for exempt customers or
products, Z otherwise.

EN 16931 allows at most two decimals in amounts (BR-DEC-*): :func:`en16931_amounts` gives
the figures to report, rounded to two decimals for three-decimal currencies with the
difference in the payable rounding amount, so the payable amount still equals the charge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Literal

from pydantic import BaseModel
from stdnum.eu import vat as eu_vat

from orderpipe.errors import OrderDataError
from orderpipe.invoicing.seller import Seller, normalise_vat_id
from orderpipe.invoicing.vat import (
    EU_VAT_PREFIXES,
    Endpoint,
    TaxCategory,
    VatTreatment,
    peppol_endpoint,
    vat_treatment,
)
from orderpipe.money import exponent, round_div
from orderpipe.order import Address, Order, OrderLine

__all__ = ["TaxCategory", "Endpoint", "InvoiceDocument", "build_invoice", "largest_remainder"]
EXEMPT_REASONS = {
    "customer_exempt": "VAT exempt: customer exempt / Verosta vapautettu asiakas",
    "product_exempt": "VAT exempt: exempt supply / Arvonlisäverosta vapautettu myynti",
}
REVERSE_CHARGE_NOTE = (
    "Reverse charge: VAT to be accounted for by the customer (Article 196, VAT Directive 2006/112/EC). "
    "Käännetty verovelvollisuus (AVL 8 c §)."
)
REVERSE_CHARGE_REASON = "Reverse charge / Käännetty verovelvollisuus"
REVERSE_CHARGE_REASON_CODE = "VATEX-EU-AE"
ZERO = Decimal(0)


class InvoiceParty(BaseModel):
    name: str
    street: str | None = None
    street2: str | None = None
    postcode: str | None = None
    city: str | None = None
    country: str  # ISO 3166 alpha-2
    vat_id: str | None = None  # only a VAT id EN 16931 accepts (country prefix)
    email: str | None = None

    def address_lines(self) -> list[str]:
        out = [x for x in (self.street, self.street2) if x]
        town = " ".join(x for x in (self.postcode, self.city) if x)
        if town:
            out.append(town)
        out.append(self.country)
        return out


class InvoiceLine(BaseModel):
    line_id: int  # 1-based
    description: str
    quantity: int
    gross: int  # what the customer paid for the line (== OrderLine.amount_total)
    net: int
    tax: int
    discount: int  # Stripe's amount_discount, informative
    category: TaxCategory
    rate: Decimal
    is_shipping: bool = False
    product_id: str | None = None


class TaxSubtotal(BaseModel):
    category: TaxCategory
    rate: Decimal
    taxable: int
    tax: int
    exemption_reason: str | None = None
    exemption_reason_code: str | None = None


class InvoiceDocument(BaseModel):
    """An invoice or (``document_type == "credit_note"``) a credit note: all amounts positive."""

    number: str
    issue_date: date
    order_id: str
    order_reference: str | None = None
    order_date: datetime
    currency: str  # ISO 4217, upper case
    exponent: int
    seller: InvoiceParty
    seller_id: str
    buyer: InvoiceParty
    delivery: Address | None = None
    lines: list[InvoiceLine]
    tax_subtotals: list[TaxSubtotal]
    line_extension: int  # sum of line nets == tax exclusive amount (no document allowances/charges)
    tax_total: int
    tax_inclusive: int
    payable: int  # == order.amount_total
    reverse_charge: bool
    prices_include_vat: bool  # True when the VAT was worked out of VAT-inclusive prices
    notes: list[str]
    buyer_kind: str | None = None  # orderpipe.invoicing.vat.BuyerKind value
    vat_notes: list[str] = []  # for the artifact (e.g. a buyer VAT id that failed its check digit)
    seller_endpoint: Endpoint | None = None  # Peppol participant ids: both set -> a Peppol BIS 3.0 document
    buyer_endpoint: Endpoint | None = None
    document_type: Literal["invoice", "credit_note"] = "invoice"
    billing_reference: str | None = None  # credit note: the invoice number it credits
    billing_reference_date: date | None = None
    refund_id: str | None = None  # credit note: the Stripe refund (re_...)
    language: str = "en"  # language of the person-readable PDF (credit notes)

    @property
    def peppol(self) -> bool:
        """A business buyer with a Peppol endpoint: the document follows Peppol BIS Billing 3.0."""
        return self.seller_endpoint is not None and self.buyer_endpoint is not None

    @property
    def is_credit_note(self) -> bool:
        return self.document_type == "credit_note"

    @property
    def tax_exclusive(self) -> int:
        return self.line_extension


class ReportedLine(BaseModel):
    net: int


class ReportedSubtotal(BaseModel):
    taxable: int
    tax: int


class ReportedAmounts(BaseModel):
    """The document's amounts as EN 16931 reports them: integers at ``decimals`` places (<= 2)."""

    decimals: int
    lines: list[ReportedLine]
    subtotals: list[ReportedSubtotal]  # parallel to InvoiceDocument.tax_subtotals
    line_extension: int
    tax_total: int
    tax_inclusive: int
    rounding: int  # PayableRoundingAmount (0: omitted)
    payable: int


# ---- helpers -------------------------------------------------------------------------------


def largest_remainder(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` in proportion to non-negative ``weights``; the parts sum to ``total``.

    Each part is the floor of its exact share plus one for the largest remainders (ties go
    to the earlier item). With all weights zero the total goes to equal shares."""
    n = len(weights)
    if n == 0:
        if total:
            raise ValueError("cannot split a non-zero amount over nothing")
        return []
    if any(w < 0 for w in weights):
        raise ValueError("weights must not be negative")
    wsum = sum(weights)
    if wsum == 0:
        weights = [1] * n
        wsum = n
    parts = [total * w // wsum for w in weights]
    remainders = [total * w - p * wsum for w, p in zip(weights, parts, strict=True)]
    left = total - sum(parts)
    for i in sorted(range(n), key=lambda i: (-remainders[i], i))[:left]:
        parts[i] += 1
    return parts


def split_inclusive(gross: int, rate: Decimal) -> int:
    """Net part of a VAT-inclusive gross amount: round(gross * 100 / (100 + rate)), half up."""
    q = (Decimal(gross) * 100 / (100 + rate)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(q)


def vat_on(net: int, rate: Decimal) -> Decimal:
    return Decimal(net) * rate / 100


def format_rate(rate: Decimal) -> str:
    """Decimal('25.50') -> '25.5', Decimal('24') -> '24' (never an exponent)."""
    return format(rate.normalize(), "f")


def canonical_rate(rate: Decimal) -> Decimal:
    """Decimal('25.50') -> Decimal('25.5'), Decimal('1E+1') -> Decimal('10')."""
    return Decimal(format_rate(rate))


def vat_prefix(vat_id: str | None) -> str | None:
    vid = normalise_vat_id(vat_id)
    if len(vid) >= 2 and vid[:2].isalpha():
        return vid[:2]
    return None


def is_valid_eu_vat(vat_id: str | None) -> bool:
    """Format and check digits of an EU VAT id (python-stdnum); no VIES lookup."""
    vid = normalise_vat_id(vat_id)
    if vat_prefix(vid) not in EU_VAT_PREFIXES:
        return False
    try:
        return bool(eu_vat.is_valid(vid))
    except Exception:  # noqa: BLE001 - stdnum raises for odd input; it simply is not valid
        return False


def _country_of_prefix(prefix: str) -> str:
    return {"EL": "GR"}.get(prefix, prefix)


def _seller_vat_country(seller: Seller) -> str:
    prefix = vat_prefix(seller.vat_id)
    return _country_of_prefix(prefix) if prefix else seller.country


def _ubl_vat_id(vat_id: str | None) -> str | None:
    """The buyer VAT id when it starts with a country prefix (BR-CO-09), else None."""
    vid = normalise_vat_id(vat_id)
    if len(vid) > 2 and vid[:2].isalpha():
        return vid
    return None


def _fail(order: Order, reason: str) -> OrderDataError:
    return OrderDataError(f"order {order.order_id}: invoice: {reason}")


# ---- parties -------------------------------------------------------------------------------


def seller_party(seller: Seller) -> InvoiceParty:
    return InvoiceParty(
        name=seller.name,
        street=seller.street,
        postcode=seller.postcode,
        city=seller.city,
        country=seller.country,
        vat_id=seller.vat_id,
        email=seller.email,
    )


def buyer_party(order: Order, seller: Seller, treatment: VatTreatment | None = None) -> InvoiceParty:
    address = order.billing_address or order.shipping_address or Address()
    if not address.country and order.shipping_address and order.shipping_address.country:
        address = address.model_copy(update={"country": order.shipping_address.country})
    name = (
        order.business_name
        or order.customer_name
        or address.name
        or (order.shipping_address.name if order.shipping_address else None)
        or order.customer_email
        or "Consumer"
    )
    # EN 16931 needs the buyer's country (BR-11); an order without any address (a digital
    # PaymentIntent) is taken to be sold where the seller is.
    country = (address.country or seller.country).upper()
    # Only a VAT id that passed its check digit goes on the document (else: a consumer).
    vat_id = treatment.buyer_vat_id if treatment is not None else _ubl_vat_id(order.buyer_vat_id)
    return InvoiceParty(
        name=name,
        street=address.line1,
        street2=address.line2,
        postcode=address.postal_code,
        city=address.city,
        country=country,
        vat_id=vat_id,
        email=order.customer_email,
    )


def buyer_qualifies_for_reverse_charge(order: Order, seller: Seller) -> bool:
    """A business buyer with a valid-format EU VAT id of another EU member state than the seller."""
    if not is_valid_eu_vat(order.buyer_vat_id):
        return False
    buyer_country = _country_of_prefix(vat_prefix(order.buyer_vat_id) or "")
    seller_country = _seller_vat_country(seller)
    seller_in_eu = seller_country in EU_VAT_PREFIXES or seller_country == "GR"
    return seller_in_eu and buyer_country != seller_country


def seller_endpoint(seller: Seller) -> Endpoint | None:
    """ORDERPIPE_SELLER_ENDPOINT when set, else the endpoint the seller's VAT id implies."""
    if seller.endpoint:
        return Endpoint.parse(seller.endpoint)
    return peppol_endpoint(seller.vat_id)


# ---- the maths -----------------------------------------------------------------------------


@dataclass
class _Work:
    """A line while the maths runs."""

    src: OrderLine
    net: int
    tax: int
    category: TaxCategory
    rate: Decimal
    reason: str | None = None
    reason_code: str | None = None


def _derive_rate(net: int, tax: int, default_vat_rate: Decimal) -> Decimal:
    """The percentage behind a line's tax when Stripe gave none."""
    if net <= 0:
        return default_vat_rate
    if abs(vat_on(net, default_vat_rate) - tax) <= 1:
        return default_vat_rate
    return (Decimal(tax) * 100 / Decimal(net)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _line_taxes(order: Order) -> list[int]:
    taxes = [line.amount_tax for line in order.lines]
    if order.tax_from_stripe and sum(taxes) == 0 and order.amount_tax > 0:
        # Only total_details.amount_tax is known: spread it over the lines by their totals.
        taxes = largest_remainder(order.amount_tax, [line.amount_total for line in order.lines])
    return taxes


def _resplit(group: list[_Work], rate: Decimal) -> None:
    """Treat the group's gross as VAT-inclusive at ``rate``; the gross of each line is kept."""
    gross = [w.src.amount_total for w in group]
    nets = largest_remainder(split_inclusive(sum(gross), rate), gross)
    for w, g, n in zip(group, gross, nets, strict=True):
        w.net, w.tax = n, g - n


def _classify(order: Order, treatment: VatTreatment, default_vat_rate: Decimal) -> tuple[list[_Work], bool]:
    explicit_reverse = order.tax_exempt == "reverse" or any(
        line.taxability_reason == "reverse_charge" for line in order.lines
    )
    taxes = _line_taxes(order) if order.tax_from_stripe else [0] * len(order.lines)
    zero_tax = sum(taxes) == 0
    # K (intra-community supply) or G (export): no VAT charged, by law. When Stripe charged
    # tax anyway its amounts stand and the taxed lines are S.
    by_law = treatment.zero_rated_by_law and zero_tax
    if explicit_reverse and zero_tax and not by_law:
        why = " ".join(treatment.notes) or f"the buyer is {treatment.kind.value.replace('_', ' ')}"
        raise _fail(order, f"Stripe charged no VAT as reverse charge, but the VAT rules make this a taxable sale "
                           f"({why}); a person must decide how to invoice it")

    work: list[_Work] = []
    for line, tax in zip(order.lines, taxes, strict=True):
        if by_law:
            work.append(_Work(src=line, net=line.amount_total, tax=0, category=treatment.category, rate=ZERO,
                              reason=treatment.exemption_reason, reason_code=treatment.exemption_reason_code))
            continue
        exempt_reason = EXEMPT_REASONS.get(line.taxability_reason or "")
        if exempt_reason is None and order.tax_exempt == "exempt":
            exempt_reason = EXEMPT_REASONS["customer_exempt"]
        if order.tax_from_stripe:
            net = line.amount_total - tax
            if tax == 0 and exempt_reason:
                work.append(_Work(src=line, net=net, tax=0, category=TaxCategory.EXEMPT, rate=ZERO,
                                  reason=exempt_reason))
                continue
            if tax == 0 and (net > 0 or not line.tax_rate):
                rate = ZERO  # Stripe charged no tax on it: zero rated (not_collecting, zero_rated...)
            elif line.tax_rate is not None:
                rate = line.tax_rate
            else:
                rate = _derive_rate(net, tax, default_vat_rate)
        else:
            if exempt_reason:
                work.append(_Work(src=line, net=line.amount_total, tax=0, category=TaxCategory.EXEMPT, rate=ZERO,
                                  reason=exempt_reason))
                continue
            # The destination's rate (one-stop shop) or the seller's: the contract's VAT table.
            rate = line.tax_rate if line.tax_rate is not None else treatment.rate
            net = line.amount_total  # split per rate group below
        if rate < 0:
            raise _fail(order, f"line {line.description!r} has a negative VAT rate {rate}")
        category = TaxCategory.STANDARD if rate > 0 else TaxCategory.ZERO_RATED
        if category is TaxCategory.ZERO_RATED and tax:
            raise _fail(order, f"line {line.description!r} carries {tax} tax at a 0 % rate")
        work.append(_Work(src=line, net=net, tax=tax, category=category, rate=rate))
    return work, by_law and treatment.category is TaxCategory.INTRA_COMMUNITY


def _groups(work: list[_Work]) -> dict[tuple[TaxCategory, Decimal], list[_Work]]:
    groups: dict[tuple[TaxCategory, Decimal], list[_Work]] = {}
    for w in work:
        groups.setdefault((w.category, canonical_rate(w.rate)), []).append(w)
    return groups


def build_invoice(
    order: Order, seller: Seller, *, number: str, issue_date: date, default_vat_rate: Decimal
) -> InvoiceDocument:
    """The order's VAT invoice; raises OrderDataError when the order cannot be invoiced as is.

    The category and rate of each line follow :func:`orderpipe.invoicing.vat.vat_treatment` (the
    contract's VAT table, ``seller.oss`` for the one-stop shop)."""
    if not order.lines:
        raise _fail(order, "the order has no line items")
    if any(line.amount_total < 0 for line in order.lines):
        raise _fail(order, "a line item has a negative amount")
    if order.lines_total() != order.amount_total:
        raise _fail(
            order,
            f"the line items add up to {order.lines_total()} but Stripe charged {order.amount_total} "
            f"({order.currency.upper()} minor units)",
        )
    exp = exponent(order.currency)
    treatment = vat_treatment(order, seller, default_vat_rate=default_vat_rate, oss=seller.oss)
    work, intra_community = _classify(order, treatment, default_vat_rate)
    groups = _groups(work)
    # BR-CO-17 accepts a VAT amount within one currency unit of taxable x rate; keep a margin
    # for the two-decimal rounding of three-decimal currencies.
    tolerance = Decimal(10) ** exp * Decimal("0.9")
    for (category, rate), group in groups.items():
        if category is not TaxCategory.STANDARD:
            continue
        if not order.tax_from_stripe:
            _resplit(group, rate)
            continue
        if any(w.net < 0 or w.tax < 0 for w in group):
            raise _fail(order, "a line item's tax exceeds its amount")
        net, tax = sum(w.net for w in group), sum(w.tax for w in group)
        if abs(vat_on(net, rate) - tax) >= tolerance:
            _resplit(group, rate)

    lines = [
        InvoiceLine(
            line_id=i,
            description=w.src.description or ("Shipping" if w.src.is_shipping else "Item"),
            quantity=w.src.quantity,
            gross=w.src.amount_total,
            net=w.net,
            tax=w.tax,
            discount=w.src.amount_discount,
            category=w.category,
            rate=canonical_rate(w.rate),
            is_shipping=w.src.is_shipping,
            product_id=w.src.product_id,
        )
        for i, w in enumerate(work, start=1)
    ]
    subtotals = [
        TaxSubtotal(
            category=category,
            rate=rate,
            taxable=sum(w.net for w in group),
            tax=sum(w.tax for w in group),
            exemption_reason=group[0].reason if category not in (TaxCategory.STANDARD, TaxCategory.ZERO_RATED)
            else None,
            exemption_reason_code=group[0].reason_code,
        )
        for (category, rate), group in sorted(groups.items(), key=lambda kv: (kv[0][0].value, -kv[0][1]))
    ]
    line_extension = sum(line.net for line in lines)
    tax_total = sum(s.tax for s in subtotals)
    buyer = buyer_party(order, seller, treatment)
    delivery = order.shipping_address if order.shipping_address and order.shipping_address.country else None
    if delivery is None and intra_community:
        # BR-IC-12: an intra-community supply names the country the goods went to.
        delivery = order.billing_address
    s_endpoint = seller_endpoint(seller)
    b_endpoint = peppol_endpoint(buyer.vat_id) if buyer.vat_id else None
    return InvoiceDocument(
        number=number,
        issue_date=issue_date,
        order_id=order.order_id,
        order_reference=order.reference,
        order_date=order.created,
        currency=order.currency.upper(),
        exponent=exp,
        seller=seller_party(seller),
        seller_id=seller.seller_id,
        buyer=buyer,
        delivery=delivery,
        lines=lines,
        tax_subtotals=subtotals,
        line_extension=line_extension,
        tax_total=tax_total,
        tax_inclusive=line_extension + tax_total,
        payable=order.amount_total,
        reverse_charge=intra_community,
        prices_include_vat=not order.tax_from_stripe,
        notes=[],
        buyer_kind=treatment.kind.value,
        vat_notes=list(treatment.notes),
        seller_endpoint=s_endpoint,
        buyer_endpoint=b_endpoint if s_endpoint is not None else None,
    )


def vat_breakdown(doc: InvoiceDocument) -> list[TaxSubtotal]:
    """The document's VAT split per category and rate: the one split every consumer reports
    (UBL, PDF, Netvisor, email, artifact). Line-level figures are ``doc.lines``' net/tax,
    which sum exactly to these subtotals."""
    return list(doc.tax_subtotals)


# ---- EN 16931 reporting ----------------------------------------------------------------------


def en16931_amounts(doc: InvoiceDocument) -> ReportedAmounts:
    """The amounts to put in UBL: at most two decimals (BR-DEC-*), all EN 16931 sums exact.

    For currencies with up to two decimals these are the document's own amounts. For
    three-decimal currencies each VAT group's taxable amount and tax are rounded half up to
    two decimals, the group's taxable amount is spread over its lines by largest remainder,
    the payable amount is the charge rounded to two decimals (exact, since Stripe charges
    such currencies in multiples of ten), and the rest goes to the payable rounding amount."""
    if doc.exponent <= 2:
        return ReportedAmounts(
            decimals=doc.exponent,
            lines=[ReportedLine(net=line.net) for line in doc.lines],
            subtotals=[ReportedSubtotal(taxable=s.taxable, tax=s.tax) for s in doc.tax_subtotals],
            line_extension=doc.line_extension,
            tax_total=doc.tax_total,
            tax_inclusive=doc.tax_inclusive,
            rounding=0,
            payable=doc.payable,
        )
    scale = 10 ** (doc.exponent - 2)
    line_nets: dict[int, int] = {}
    subtotals: list[ReportedSubtotal] = []
    for sub in doc.tax_subtotals:
        members = [line for line in doc.lines if line.category is sub.category and line.rate == sub.rate]
        taxable = round_div(sub.taxable, scale)
        for line, part in zip(members, largest_remainder(taxable, [m.net for m in members]), strict=True):
            line_nets[line.line_id] = part
        subtotals.append(ReportedSubtotal(taxable=taxable, tax=round_div(sub.tax, scale)))
    line_extension = sum(line_nets.values())
    tax_total = sum(s.tax for s in subtotals)
    payable = round_div(doc.payable, scale)
    return ReportedAmounts(
        decimals=2,
        lines=[ReportedLine(net=line_nets[line.line_id]) for line in doc.lines],
        subtotals=subtotals,
        line_extension=line_extension,
        tax_total=tax_total,
        tax_inclusive=line_extension + tax_total,
        rounding=payable - (line_extension + tax_total),
        payable=payable,
    )


def reported_decimal(amount: int, decimals: int) -> Decimal:
    """An integer at ``decimals`` places as a Decimal with exactly that many places."""
    return (Decimal(amount) / (Decimal(10) ** decimals)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_FLOOR)
