"""Mailgun (EU) stand-in: ``POST /v3/<domain>/messages`` and ``GET /v3/domains/<domain>``.

Wire format per vendor-apis.md §6: HTTP Basic ``api:<key>`` (401 plain text ``Forbidden``
otherwise), multipart or urlencoded fields (``to`` may repeat), one of ``text``/``html``/
``template`` required (400 ``{"message"}``), unknown domain 404, success
``{"id": "<...@domain>", "message": "Queued. Thank you."}``. Templates are known by name
and version; an unknown ``t:version`` is a 400 (the real text is [U]).
No server-side dedupe: every accepted POST is a new message (``messages``).
"""

from __future__ import annotations

import base64
import itertools
from dataclasses import dataclass, field

from werkzeug.wrappers import Request, Response

from tests.standins.wsgi_thread import Recorded, Respond, StandIn, json_response


@dataclass
class MailgunMessage:
    id: str
    form: dict[str, list[str]]
    files: dict[str, list[tuple[str, str, bytes]]] = field(default_factory=dict)

    def one(self, name: str) -> str | None:
        values = self.form.get(name)
        return values[0] if values else None


class MailgunStandIn(StandIn):
    def __init__(self, api_key: str = "key-test", domain: str = "mg.example.fi",
                 templates: dict[str, set[str]] | None = None) -> None:
        super().__init__()
        self.api_key = api_key
        self.domain = domain
        self.templates = templates if templates is not None else {"order-confirmation": {"fi", "en", "sv"}}
        self.messages: list[MailgunMessage] = []
        self._ids = itertools.count(1)

    def handle(self, request: Request, recorded: Recorded) -> Response:
        if not self._authorized(request):
            return Response("Forbidden", 401, mimetype="text/plain")
        parts = request.path.strip("/").split("/")
        if request.method == "GET" and len(parts) == 3 and parts[:2] == ["v3", "domains"]:
            if parts[2] != self.domain:
                return json_response({"message": "Domain not found"}, 404)
            return json_response({"domain": {"name": self.domain, "state": "active"},
                                  "receiving_dns_records": [], "sending_dns_records": []})
        if request.method == "POST" and len(parts) == 3 and parts[0] == "v3" and parts[2] == "messages":
            if parts[1] != self.domain:
                return json_response({"message": f"Domain not found: {parts[1]}"}, 404)
            return self._send(recorded)
        return json_response({"message": "Not Found"}, 404)

    def _authorized(self, request: Request) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        try:
            user, _, key = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == "api" and key == self.api_key

    def _send(self, recorded: Recorded) -> Response:
        form = recorded.fields
        for name in ("from", "to", "subject"):
            if not form.get(name):
                return json_response({"message": f"'{name}' parameter is missing"}, 400)
        if not any(form.get(k) for k in ("text", "html", "amp-html", "template")):
            return json_response({"message": "Need at least one of 'text', 'html' or 'template' parameters "
                                             "specified"}, 400)
        template = (form.get("template") or [None])[0]
        if template is not None:
            if template not in self.templates:
                return json_response({"message": f"template {template} not found"}, 400)
            version = (form.get("t:version") or [None])[0]
            if version is not None and version not in self.templates[template]:
                return json_response({"message": f"template version {version} not found"}, 400)
        options = sum(len(k) + sum(len(v) for v in vs) for k, vs in form.items() if k[:2] in ("o:", "h:", "v:", "t:"))
        if options > 16 * 1024:
            return json_response({"message": "options too large"}, 400)
        message_id = f"<20260510100000.{next(self._ids)}.ABCDEF@{self.domain}>"
        self.messages.append(MailgunMessage(id=message_id, form=form, files=recorded.files))
        return json_response({"id": message_id, "message": "Queued. Thank you."})


def rate_limited(retry_after: int = 1) -> Respond:
    return Respond(429, {"message": "Too many requests"}, {"Retry-After": str(retry_after)})


def server_error(status: int = 503) -> Respond:
    return Respond(status, "Service Unavailable" if status == 503 else "Internal Server Error")
