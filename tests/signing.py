"""Test helper: sign a payload the way Stripe does (t=..., v1=HMAC-SHA256 of "t.body")."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    t = int(time.time()) if timestamp is None else timestamp
    sig = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={sig}"


def event(event_id: str, etype: str, obj: dict[str, Any]) -> bytes:
    return json.dumps({"id": event_id, "object": "event", "type": etype, "created": int(time.time()),
                       "livemode": False, "api_version": "2025-03-31.basil", "data": {"object": obj}}).encode()
