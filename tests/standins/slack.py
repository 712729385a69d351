"""Slack incoming-webhook stand-in: ``POST /services/<T>/<B>/<secret>``.

Wire format per vendor-apis.md §10: JSON ``{"text": ...}`` -> 200 with the plain text
``ok``; failures are a status plus a plain-text code: 400 ``invalid_payload`` (not JSON) /
``no_text``, 404 ``no_service`` (unknown webhook), 410 ``channel_is_archived``, 500
``rollup_error``; 429 with ``Retry-After``. ``web_api_style_failure()`` answers the Web
API's 200 ``{"ok": false}`` (handled defensively by the client).
"""

from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.standins.wsgi_thread import Recorded, Respond, StandIn


def text(status: int, body: str, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status, headers=headers or {}, mimetype="text/html")


class SlackStandIn(StandIn):
    def __init__(self, path: str = "/services/T0000/B0000/XXXXXXXXXXXXXXXXXXXXXXXX") -> None:
        super().__init__()
        self.path = path
        self.messages: list[dict[str, Any]] = []

    @property
    def webhook_url(self) -> str:
        return self.url + self.path

    def handle(self, request: Request, recorded: Recorded) -> Response:
        if request.path != self.path:
            return text(404, "no_service")
        if request.method != "POST":
            return text(405, "invalid_method")
        try:
            payload = json.loads(recorded.body)
        except ValueError:
            return text(400, "invalid_payload")
        if not isinstance(payload, dict):
            return text(400, "invalid_payload")
        if not payload.get("text") and not payload.get("blocks"):
            return text(400, "no_text")
        self.messages.append(payload)
        return text(200, "ok")


def rate_limited(retry_after: int = 1) -> Respond:
    return Respond(429, "rate_limited", {"Retry-After": str(retry_after)})


def archived() -> Respond:
    return Respond(410, "channel_is_archived")


def rollup_error() -> Respond:
    return Respond(500, "rollup_error")


def web_api_style_failure() -> Respond:
    return Respond(200, {"ok": False, "error": "channel_not_found"})
