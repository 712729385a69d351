"""A shop's status-callback endpoint, verifying orderpipe's signature the way a shop would.

Verification is written here independently (Stripe's documented algorithm, vendor-apis.md
§1), not imported from orderpipe, so the contract test is a real cross-check. Every
correctly signed delivery is kept in ``deliveries``; ``accepted`` keeps one per
Idempotency-Key, as a careful shop would. A bad or stale signature gets 400.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.standins.wsgi_thread import Recorded, StandIn, json_response


def shop_verifies(raw: bytes, header: str, secret: str, tolerance: int = 300) -> bool:
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    ts = [v for k, v in parts if k == "t"]
    sigs = [v for k, v in parts if k == "v1"]
    if len(ts) != 1 or not ts[0].isdigit() or not sigs:
        return False
    msg = ts[0].encode() + b"." + raw
    expected = hmac.new(secret.encode(), msg, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, s) for s in sigs) and int(ts[0]) >= time.time() - tolerance


@dataclass
class Delivery:
    method: str
    idempotency_key: str | None
    raw: bytes
    body: dict[str, Any]
    signature: str


class ShopCallbackStandIn(StandIn):
    def __init__(self, secret: str = "cb_secret_test", path: str = "/api/orderpipe/status") -> None:
        super().__init__()
        self.secret = secret
        self.path = path
        self.deliveries: list[Delivery] = []
        self.accepted: dict[str, Delivery] = {}

    @property
    def callback_url(self) -> str:
        return self.url + self.path

    def handle(self, request: Request, recorded: Recorded) -> Response:
        if request.path != self.path:
            return json_response({"error": "not found"}, 404)
        signature = request.headers.get("X-Orderpipe-Signature", "")
        if not shop_verifies(recorded.body, signature, self.secret):
            return json_response({"error": "bad signature"}, 400)
        try:
            body = json.loads(recorded.body)
        except ValueError:
            return json_response({"error": "not json"}, 400)
        delivery = Delivery(method=request.method, idempotency_key=request.headers.get("Idempotency-Key"),
                            raw=recorded.body, body=body, signature=signature)
        self.deliveries.append(delivery)
        if delivery.idempotency_key:
            self.accepted.setdefault(delivery.idempotency_key, delivery)
        return json_response({"received": True})
