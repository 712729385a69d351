"""EU member states' standard VAT rates, as data (the one-stop shop rates for consumers).

Source: European Commission, DG TAXUD, "VAT rates applied in the Member States of the
European Union" (taxation-customs.ec.europa.eu, "Taxes in Europe Database" and the
periodic PDF), with the changes announced since: Slovakia 23 % from 2025-01-01,
Estonia 24 % from 2025-07-01, Romania 21 % from 2025-08-01, Finland 25.5 % from 2024-09-01.
Situation as of ``AS_OF``. Rates change by national law a few times a year: update the
table (and ``AS_OF``) when a member state changes its standard rate; reduced rates are not
used by orderpipe (Stripe Tax handles product-specific rates when it is on).

Keys are ISO 3166 alpha-2 country codes (Greece is ``GR`` here; its VAT prefix is ``EL``).
"""

from __future__ import annotations

from decimal import Decimal

SOURCE = "European Commission, DG TAXUD: VAT rates applied in the Member States of the European Union"
AS_OF = "2025-08-01"

STANDARD_RATES: dict[str, Decimal] = {
    "AT": Decimal("20"),
    "BE": Decimal("21"),
    "BG": Decimal("20"),
    "CY": Decimal("19"),
    "CZ": Decimal("21"),
    "DE": Decimal("19"),
    "DK": Decimal("25"),
    "EE": Decimal("24"),
    "ES": Decimal("21"),
    "FI": Decimal("25.5"),
    "FR": Decimal("20"),
    "GR": Decimal("24"),
    "HR": Decimal("25"),
    "HU": Decimal("27"),
    "IE": Decimal("23"),
    "IT": Decimal("22"),
    "LT": Decimal("21"),
    "LU": Decimal("17"),
    "LV": Decimal("21"),
    "MT": Decimal("18"),
    "NL": Decimal("21"),
    "PL": Decimal("23"),
    "PT": Decimal("23"),
    "RO": Decimal("21"),
    "SE": Decimal("25"),
    "SI": Decimal("22"),
    "SK": Decimal("23"),
}

EU_COUNTRIES = frozenset(STANDARD_RATES)


def standard_rate(country: str) -> Decimal | None:
    """The member state's standard VAT rate in percent, None outside the EU."""
    return STANDARD_RATES.get(country.upper())
