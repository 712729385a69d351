"""Telegram Bot API stand-in: ``/bot<token>/sendMessage`` and ``/bot<token>/getMe``.

Wire format per vendor-apis.md §9: GET or POST, parameters in the query, a form or JSON;
method names case-insensitive; every answer is ``{"ok": true, "result": ...}`` or
``{"ok": false, "error_code", "description"[, "parameters"]}``. Unknown chat -> 400 ``chat
not found``; a migrated group -> 400 with ``parameters.migrate_to_chat_id``; flood control
(``flood_control()``) -> 429 with ``parameters.retry_after`` and no Retry-After header.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.standins.wsgi_thread import Recorded, Respond, StandIn, json_response


def failure(code: int, description: str, parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return body


class TelegramStandIn(StandIn):
    def __init__(self, token: str = "123456789:AAE-test-token", chats: set[int | str] | None = None,
                 migrated: dict[int, int] | None = None) -> None:
        super().__init__()
        self.token = token
        self.chats = chats if chats is not None else {-1001234567890}
        self.migrated = migrated or {}
        self.messages: list[dict[str, Any]] = []
        self._ids = itertools.count(42)

    def handle(self, request: Request, recorded: Recorded) -> Response:
        prefix, _, method = request.path.lstrip("/").partition("/")
        if prefix != f"bot{self.token}":
            return json_response(failure(401, "Unauthorized"), 401)
        params: dict[str, Any] = {**recorded.query, **recorded.form()}
        payload = recorded.json_or_none()
        if isinstance(payload, dict):
            params.update(payload)
        method = method.lower()
        if method == "getme":
            return json_response({"ok": True, "result": {"id": 123456789, "is_bot": True,
                                                         "first_name": "orderpipe", "username": "orderpipe_bot"}})
        if method == "sendmessage":
            return self._send(params)
        return json_response(failure(404, "Not Found: method not found"), 404)

    def _send(self, params: dict[str, Any]) -> Response:
        chat = params.get("chat_id")
        try:
            chat_key: int | str = int(chat) if not (isinstance(chat, str) and chat.startswith("@")) else chat
        except (TypeError, ValueError):
            return json_response(failure(400, "Bad Request: chat not found"), 400)
        if isinstance(chat_key, int) and chat_key in self.migrated:
            return json_response(failure(400, "Bad Request: group chat was upgraded to a supergroup chat",
                                         {"migrate_to_chat_id": self.migrated[chat_key]}), 400)
        if chat_key not in self.chats:
            return json_response(failure(400, "Bad Request: chat not found"), 400)
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            return json_response(failure(400, "Bad Request: message text is empty"), 400)
        if len(text) > 4096:
            return json_response(failure(400, "Bad Request: message is too long"), 400)
        message = {"message_id": next(self._ids), "date": int(time.time()),
                   "chat": {"id": chat_key, "type": "supergroup", "title": "ops"}, "text": text}
        self.messages.append({"chat_id": chat_key, "text": text, "params": params})
        return json_response({"ok": True, "result": message})


def flood_control(retry_after: int = 1) -> Respond:
    return Respond(429, failure(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after}))


def blocked() -> Respond:
    return Respond(403, failure(403, "Forbidden: bot was blocked by the user"))


def bad_gateway() -> Respond:
    return Respond(502, "<html><body>502 Bad Gateway</body></html>")
