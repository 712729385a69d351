"""JSON request bodies with exact money: a Decimal becomes a JSON number with its own digits.

``json.dumps`` refuses Decimal and a float would round; vendors (Zoho ``Amount``, Airtable
currency fields) want a plain JSON number such as ``53.90``.
"""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from typing import Any


def dumps(payload: Any) -> bytes:
    """Serialise ``payload`` to UTF-8 JSON; Decimal values are written as exact JSON numbers."""
    marker = f"@dec-{uuid.uuid4().hex}-"
    decimals: list[Decimal] = []

    def swap(value: Any) -> Any:
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise ValueError(f"cannot send {value} as a JSON number")
            decimals.append(value)
            return f"{marker}{len(decimals) - 1}"
        if isinstance(value, dict):
            return {k: swap(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [swap(v) for v in value]
        return value

    text = json.dumps(swap(payload), ensure_ascii=False, separators=(",", ":"))
    for i, value in enumerate(decimals):
        text = text.replace(f'"{marker}{i}"', format(value, "f"), 1)
    return text.encode("utf-8")


JSON_HEADERS = {"Content-Type": "application/json"}
