"""VAT by destination: which category and rate the law wants for a buyer, as pure data.

The rules are the contract's "VAT categories" table:

| buyer | category | rate |
|---|---|---|
| in the seller's country | S | ``ORDERPIPE_VAT_RATE`` |
| consumer in another EU country | S | that country's standard rate (OSS); ``ORDERPIPE_OSS=false``: the seller's |
| business with a valid VAT id of another EU country, goods shipped to the EU | K, ``VATEX-EU-IC`` | 0 |
| outside the EU | G, ``VATEX-EU-G`` | 0 |

"Valid" is python-stdnum's format and check digit test (no VIES lookup). A VAT id that
fails it makes the buyer a consumer, and :attr:`VatTreatment.notes` says so (for the
order's artifact). The destination is where the goods go: the shipping address, else the
billing address, else (a digital order with no address) the seller's own country.

Also here: Peppol endpoint ids (``cbc:EndpointID``) derived from VAT ids, with the EAS
scheme per country from Peppol's EAS code list (the list the Peppol BIS 3.0 rules check).
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel
from stdnum.eu import vat as eu_vat
from stdnum.util import get_cc_module

from orderpipe.invoicing.eu_vat_rates import EU_COUNTRIES, standard_rate
from orderpipe.invoicing.seller import Seller, normalise_vat_id
from orderpipe.order import Order

ZERO = Decimal(0)
EU_VAT_PREFIXES = frozenset(s.upper() for s in eu_vat.MEMBER_STATES) | {"EL"}

INTRA_COMMUNITY_CODE = "VATEX-EU-IC"
INTRA_COMMUNITY_REASON = (
    "Intra-community supply of goods, VAT exempt (Article 138 VAT Directive 2006/112/EC) / "
    "Yhteisömyynti, arvonlisäverolain 72 a §"
)
EXPORT_CODE = "VATEX-EU-G"
EXPORT_REASON = (
    "Export of goods outside the EU, VAT exempt (Article 146 VAT Directive 2006/112/EC) / "
    "Vienti EU:n ulkopuolelle, arvonlisäverolain 70 §"
)


class TaxCategory(StrEnum):
    """UNCL5305 VAT category codes used on orderpipe's invoices and credit notes."""

    STANDARD = "S"
    INTRA_COMMUNITY = "K"
    EXPORT = "G"
    REVERSE_CHARGE = "AE"
    ZERO_RATED = "Z"
    EXEMPT = "E"


class BuyerKind(StrEnum):
    DOMESTIC = "domestic"  # in the seller's country (consumer or business)
    EU_CONSUMER = "eu_consumer"  # another EU country, no valid VAT id (one-stop shop)
    EU_BUSINESS = "eu_business"  # another EU country, valid VAT id: intra-community supply
    EXPORT = "export"  # outside the EU


class VatIdCheck(BaseModel):
    value: str  # normalised ("DE136695976")
    country: str | None  # ISO 3166 alpha-2 of its prefix (EL -> GR), None without a prefix
    valid: bool
    problem: str | None = None


class VatTreatment(BaseModel):
    kind: BuyerKind
    destination: str  # ISO 3166 alpha-2 where the goods go
    category: TaxCategory  # for lines Stripe did not tax otherwise
    rate: Decimal  # percent applied to VAT-inclusive prices when Stripe computed no tax
    exemption_reason_code: str | None = None
    exemption_reason: str | None = None
    buyer_vat_id: str | None = None  # only a VAT id that passed its check digit
    notes: list[str] = []  # for the artifact, e.g. a VAT id that failed its check

    @property
    def zero_rated_by_law(self) -> bool:
        return self.category in (TaxCategory.INTRA_COMMUNITY, TaxCategory.EXPORT)


class Endpoint(BaseModel):
    """A Peppol participant id: EAS scheme and value (``cbc:EndpointID/@schemeID``)."""

    scheme: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """'0037:003712345671' -> Endpoint('0037', '003712345671'); ValueError otherwise."""
        scheme, sep, value = text.strip().partition(":")
        if not sep or not (len(scheme) == 4 and scheme.isdigit()) or not value.strip():
            raise ValueError("must be <4-digit EAS scheme>:<identifier>, e.g. 0213:FI12345671")
        return cls(scheme=scheme, value=value.strip())


def country_of_prefix(prefix: str) -> str:
    return {"EL": "GR", "XI": "GB"}.get(prefix, prefix)


def vat_prefix(vat_id: str | None) -> str | None:
    vid = normalise_vat_id(vat_id)
    if len(vid) > 2 and vid[:2].isalpha():
        return vid[:2]
    return None


def check_vat_id(vat_id: str | None) -> VatIdCheck:
    """Format and check digit of a VAT id with python-stdnum (EU ids and other countries stdnum knows)."""
    vid = normalise_vat_id(vat_id)
    prefix = vat_prefix(vid)
    if prefix is None:
        return VatIdCheck(value=vid, country=None, valid=False, problem="no country prefix")
    country = country_of_prefix(prefix)
    try:
        if prefix in EU_VAT_PREFIXES or prefix == "XI":
            valid = bool(eu_vat.is_valid(vid))
        else:
            module = get_cc_module(prefix.lower(), "vat")
            valid = module is not None and bool(module.is_valid(vid))
    except Exception:  # noqa: BLE001 - stdnum raises its own errors for odd input: simply not valid
        valid = False
    return VatIdCheck(value=vid, country=country, valid=valid,
                      problem=None if valid else "fails the format or check digit test")


def destination_country(order: Order, seller: Seller) -> str:
    for address in (order.shipping_address, order.billing_address):
        if address is not None and address.country:
            return address.country.upper()
    return seller.country.upper()


def vat_treatment(order: Order, seller: Seller, *, default_vat_rate: Decimal, oss: bool = True) -> VatTreatment:
    """The contract's VAT table applied to this order's buyer."""
    destination = destination_country(order, seller)
    seller_country = seller.country.upper()
    notes: list[str] = []
    check = check_vat_id(order.buyer_vat_id) if order.buyer_vat_id else None
    if check is not None and not check.valid:
        notes.append(f"Buyer VAT id {order.buyer_vat_id!r} {check.problem}: the buyer is treated as a consumer.")
    buyer_vat = check.value if check is not None and check.valid else None

    if destination == seller_country:
        return VatTreatment(kind=BuyerKind.DOMESTIC, destination=destination, category=TaxCategory.STANDARD,
                            rate=default_vat_rate, buyer_vat_id=buyer_vat, notes=notes)
    if destination in EU_COUNTRIES:
        if check is not None and check.valid and check.country in EU_COUNTRIES and check.country != seller_country:
            return VatTreatment(kind=BuyerKind.EU_BUSINESS, destination=destination,
                                category=TaxCategory.INTRA_COMMUNITY, rate=ZERO,
                                exemption_reason_code=INTRA_COMMUNITY_CODE, exemption_reason=INTRA_COMMUNITY_REASON,
                                buyer_vat_id=buyer_vat, notes=notes)
        rate = (standard_rate(destination) or default_vat_rate) if oss else default_vat_rate
        return VatTreatment(kind=BuyerKind.EU_CONSUMER, destination=destination, category=TaxCategory.STANDARD,
                            rate=rate, buyer_vat_id=buyer_vat, notes=notes)
    return VatTreatment(kind=BuyerKind.EXPORT, destination=destination, category=TaxCategory.EXPORT, rate=ZERO,
                        exemption_reason_code=EXPORT_CODE, exemption_reason=EXPORT_REASON, buyer_vat_id=buyer_vat,
                        notes=notes)


# ---- Peppol endpoint ids --------------------------------------------------------------------

# EAS (ISO 6523 ICD / Peppol "Electronic Address Scheme") per VAT prefix, from Peppol's EAS
# code list as the BIS 3.0 rules (v3.0.19) accept it. Where a country's Peppol practice is
# an organisation number derivable from the VAT id, that is used (BE 0208, DK 0184, SE 0007,
# NO 0192); otherwise the national VAT number scheme.
EAS_BY_PREFIX = {
    "AT": "9914", "BE": "0208", "BG": "9926", "CY": "9928", "CZ": "9929", "DE": "9930", "DK": "0184",
    "EE": "9931", "EL": "9933", "ES": "9920", "FI": "0213", "FR": "9957", "HR": "9934", "HU": "9910",
    "IE": "9935", "IT": "0211", "LT": "9937", "LU": "9938", "LV": "9939", "MT": "9943", "NL": "9944",
    "PL": "9945", "PT": "9946", "RO": "9947", "SE": "0007", "SI": "9949", "SK": "9950",
    "GB": "9932", "XI": "9932", "CH": "9927", "LI": "9936", "MC": "9940", "ME": "9941", "MK": "9942",
    "RS": "9948", "SM": "9951", "TR": "9952", "VA": "9953", "NO": "0192",
}  # fmt: skip


def peppol_endpoint(vat_id: str | None) -> Endpoint | None:
    """The Peppol endpoint a VAT id implies, or None when there is no scheme for it."""
    vid = normalise_vat_id(vat_id)
    prefix = vat_prefix(vid)
    if prefix is None or prefix not in EAS_BY_PREFIX:
        return None
    scheme = EAS_BY_PREFIX[prefix]
    digits = vid[2:]
    if prefix == "BE":  # enterprise number: the 10 digits of the VAT id
        value = digits.zfill(10)
    elif prefix == "DK":  # CVR: the 8 digits
        value = digits
    elif prefix == "SE":  # organisation number: SE + 10 digits + "01"
        value = digits[:10]
    elif prefix == "NO":  # organisation number: NO + 9 digits + "MVA"
        value = digits[:9]
    else:
        value = vid
    return Endpoint(scheme=scheme, value=value)
