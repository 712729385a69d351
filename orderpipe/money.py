"""Currency exponents and exact conversions between Stripe minor units and Decimal.

Stripe's own table (not ISO 4217: they disagree for ISK, UGX, MGA) decides how many
decimals an amount has; see shared/docs/vendor-apis.md, "Money".
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

ZERO_DECIMAL = frozenset(
    "bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split()
)
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())


def exponent(currency: str) -> int:
    """Number of decimals Stripe's minor units carry for this currency."""
    c = currency.lower()
    if c in ZERO_DECIMAL:
        return 0
    if c in THREE_DECIMAL:
        return 3
    return 2


def to_decimal(minor: int, currency: str) -> Decimal:
    """4990 eur -> Decimal('49.90'); 500 jpy -> Decimal('500'); 5120 kwd -> Decimal('5.120')."""
    e = exponent(currency)
    return (Decimal(minor) / (Decimal(10) ** e)).quantize(Decimal(1).scaleb(-e))


def round_div(numerator: int, denominator: int) -> int:
    """Integer division rounded half away from zero (commercial rounding)."""
    q = (Decimal(numerator) / Decimal(denominator)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return int(q)
