"""UPU S10 item identifiers: the 13-character tracking numbers of postal items.

Layout: 2-letter service indicator, 8-digit serial number, 1 check digit, 2-letter ISO 3166
country code of the issuing postal operator, e.g. ``RR473124829GB``. The check digit uses
the weights 8, 6, 4, 2, 3, 5, 9, 7: ``11 - sum % 11``, where 10 becomes 0 and 11 becomes 5.
"""

from __future__ import annotations

import re

WEIGHTS = (8, 6, 4, 2, 3, 5, 9, 7)
MAX_SERIAL = 99_999_999
_SHAPE = re.compile(r"[A-Z]{2}[0-9]{9}[A-Z]{2}")


def check_digit(serial8: str) -> int:
    """The S10 check digit of an 8-digit serial number."""
    if len(serial8) != 8 or not serial8.isascii() or not serial8.isdigit():
        raise ValueError(f"an S10 serial number has exactly 8 digits, got {serial8!r}")
    rest = 11 - sum(int(d) * w for d, w in zip(serial8, WEIGHTS, strict=True)) % 11
    if rest == 10:
        return 0
    if rest == 11:
        return 5
    return rest


def make_tracking_number(service: str, serial: int, country: str) -> str:
    """E.g. ("CP", 1, "FI") -> "CP000000014FI"."""
    if not (len(service) == 2 and service.isascii() and service.isalpha() and service.isupper()):
        raise ValueError(f"an S10 service indicator is two capital letters, got {service!r}")
    if not (len(country) == 2 and country.isascii() and country.isalpha()):
        raise ValueError(f"an S10 country code is two letters (ISO 3166 alpha-2), got {country!r}")
    if not 0 <= serial <= MAX_SERIAL:
        raise ValueError(f"an S10 serial number is between 0 and {MAX_SERIAL}, got {serial}")
    serial8 = f"{serial:08d}"
    return f"{service}{serial8}{check_digit(serial8)}{country.upper()}"


def is_valid(tn: str) -> bool:
    """True for a well-formed S10 number whose check digit is right (upper case, no spaces)."""
    if not isinstance(tn, str) or not _SHAPE.fullmatch(tn):
        return False
    return check_digit(tn[2:10]) == int(tn[10])
