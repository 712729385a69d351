"""Resend stand-in: ``POST /emails`` with Idempotency-Key replay, ``GET /domains``.

Wire format per vendor-apis.md §7: ``Authorization: Bearer re_...`` (401
``missing_api_key`` / 403 ``invalid_api_key``), JSON bodies, errors
``{"statusCode", "name", "message"}``, ``ratelimit-*`` headers on every answer, 429
``rate_limit_exceeded`` with ``retry-after``. Idempotency-Key (1-256 chars, 400
``invalid_idempotency_key`` otherwise): same key + same payload -> the original answer,
nothing sent; same key + other payload -> 409 ``invalid_idempotent_request``; same key
still in flight -> 409 ``concurrent_idempotent_requests``.
"""

from __future__ import annotations

import hashlib
import json
import threading
import uuid
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.standins.wsgi_thread import Recorded, Respond, StandIn

RATE_HEADERS = {"ratelimit-limit": "2", "ratelimit-remaining": "1", "ratelimit-reset": "1"}


def error(status: int, name: str, message: str, headers: dict[str, str] | None = None) -> Response:
    body = {"statusCode": status, "name": name, "message": message}
    return Response(json.dumps(body), status, headers={**RATE_HEADERS, **(headers or {})},
                    mimetype="application/json")


class ResendStandIn(StandIn):
    def __init__(self, api_key: str = "re_test_123", *, restricted: bool = False) -> None:
        super().__init__()
        self.api_key = api_key
        self.restricted = restricted  # a sending-only key: GET /domains -> 401 restricted_api_key
        self.emails: dict[str, dict[str, Any]] = {}
        self._keys: dict[str, tuple[str, Response | None]] = {}  # key -> (payload hash, answer or in flight)
        self._key_lock = threading.Lock()

    def handle(self, request: Request, recorded: Recorded) -> Response:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return error(401, "missing_api_key", "Missing API key in the authorization header.")
        if auth[7:] != self.api_key:
            return error(403, "invalid_api_key", "API key is invalid.")
        if request.method == "GET" and request.path == "/domains":
            if self.restricted:
                return error(401, "restricted_api_key", "This API key is restricted to only send emails.")
            return Response(json.dumps({"object": "list", "data": [
                {"id": "d91cd9bd", "name": "example.fi", "status": "verified", "region": "eu-west-1"}]}),
                200, headers=RATE_HEADERS, mimetype="application/json")
        if request.method == "POST" and request.path == "/emails":
            return self._send(request, recorded)
        return error(404, "not_found", "The requested endpoint does not exist.")

    def _send(self, request: Request, recorded: Recorded) -> Response:
        payload = recorded.json_or_none()
        if not isinstance(payload, dict):
            return error(422, "validation_error", "Invalid JSON body.")
        key = request.headers.get("Idempotency-Key")
        digest = hashlib.sha256(recorded.body).hexdigest()
        if key is not None:
            if not 1 <= len(key) <= 256:
                return error(400, "invalid_idempotency_key", "The key must be between 1-256 chars.")
            with self._key_lock:
                seen = self._keys.get(key)
                if seen is None:
                    self._keys[key] = (digest, None)
            if seen is not None:
                seen_digest, answer = seen
                if seen_digest != digest:
                    return error(409, "invalid_idempotent_request",
                                 "Same idempotency key used with a different request payload.")
                if answer is None:
                    return error(409, "concurrent_idempotent_requests",
                                 "Same idempotency key used while original request is still in progress.")
                return Response(answer.get_data(), answer.status_code, headers=dict(answer.headers))
        answer = self._create(payload)
        if key is not None:
            with self._key_lock:
                if answer.status_code < 500:
                    self._keys[key] = (digest, answer)
                else:
                    self._keys.pop(key, None)
        return answer

    def _create(self, payload: dict[str, Any]) -> Response:
        for name in ("from", "to", "subject"):
            if not payload.get(name):
                return error(422, "missing_required_field", f"Missing `{name}` field.")
        if not any(payload.get(k) for k in ("html", "text", "template")):
            return error(422, "missing_required_field", "Missing `html` or `text` field.")
        email_id = str(uuid.uuid4())
        self.emails[email_id] = payload
        return Response(json.dumps({"id": email_id}), 200, headers=RATE_HEADERS, mimetype="application/json")


def rate_limited(retry_after: int = 1) -> Respond:
    return Respond(429, {"statusCode": 429, "name": "rate_limit_exceeded",
                         "message": "Too many requests. You can only make 2 requests per second."},
                   {**RATE_HEADERS, "ratelimit-remaining": "0", "retry-after": str(retry_after)})


def quota_exceeded() -> Respond:
    return Respond(429, {"statusCode": 429, "name": "daily_quota_exceeded",
                         "message": "You have reached your daily email sending quota."}, dict(RATE_HEADERS))


def server_error() -> Respond:
    return Respond(500, {"statusCode": 500, "name": "application_error",
                         "message": "An unexpected error occurred."}, dict(RATE_HEADERS))
