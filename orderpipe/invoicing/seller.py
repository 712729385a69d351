"""The seller: the invoice issuer and label sender, from the ORDERPIPE_SELLER_* settings."""

from __future__ import annotations

from pydantic import BaseModel, field_validator
from stdnum.eu import vat

from orderpipe.settings import Settings, country_code


class Seller(BaseModel):
    name: str
    street: str
    postcode: str
    city: str
    country: str  # ISO 3166 alpha-2, upper case
    vat_id: str
    email: str
    oss: bool = True  # ORDERPIPE_OSS: EU consumers pay their own country's rate (one-stop shop)
    endpoint: str | None = None  # ORDERPIPE_SELLER_ENDPOINT "<EAS>:<id>"; None: derived from the VAT id

    @field_validator("country")
    @classmethod
    def _country(cls, v: str) -> str:
        return country_code(v)

    @field_validator("vat_id")
    @classmethod
    def _vat_id(cls, v: str) -> str:
        v = normalise_vat_id(v)
        if not v:
            raise ValueError("the seller's VAT id must not be empty")
        return v

    @classmethod
    def from_settings(cls, settings: Settings) -> Seller:
        return cls(
            name=settings.orderpipe_seller_name,
            street=settings.orderpipe_seller_street,
            postcode=settings.orderpipe_seller_postcode,
            city=settings.orderpipe_seller_city,
            country=settings.orderpipe_seller_country,
            vat_id=settings.orderpipe_seller_vat_id,
            email=settings.orderpipe_seller_email,
            oss=settings.orderpipe_oss,
            endpoint=settings.orderpipe_seller_endpoint,
        )

    @property
    def seller_id(self) -> str:
        """Key of the seller's invoice number series: the normalised VAT id ("FI12345671")."""
        return self.vat_id[:64]


def normalise_vat_id(value: str | None) -> str:
    """'fi 1234567-1' -> 'FI12345671': no separators, upper case (stdnum's compact form for EU ids)."""
    if not value:
        return ""
    try:
        compact = vat.compact(value)
    except Exception:  # noqa: BLE001 - stdnum raises its own errors for unknown prefixes
        compact = value
    return "".join(ch for ch in compact if ch.isalnum()).upper()
