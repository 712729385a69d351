"""A stateful local Zoho (EU) stand-in: the accounts token endpoint and the CRM v8 record API.

Wire format per shared/docs/vendor-apis.md section 2: form or query token grants with
``expires_in`` 3600 and in-band ``error`` bodies, the 10-per-10-minutes token throttle and the
10-live-tokens cap; ``Authorization: Zoho-oauthtoken``; upsert with ``duplicate_check_fields``
and per-record ``data[]`` results (errors keep HTTP 2xx); 401 ``INVALID_TOKEN``; search
answering "no match" with an empty 204.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
import time
from collections import deque
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from werkzeug.wrappers import Request, Response

from tests.standins.wsgi_thread import Fault, Recorded, StandIn, json_response

CLIENT_ID = "1000.STANDINCLIENT"
CLIENT_SECRET = "standin-client-secret-0123"
REFRESH_TOKEN = "1000.standinrefresh.0123456789"
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
SYSTEM_DUPLICATE_FIELDS = {"Contacts": ["Email"], "Leads": ["Email"]}
THROTTLE_BODY = {"error_description": "You have made too many requests continuously. Please try again after some time.",
                 "error": "Access Denied", "status": "failure"}


class ZohoStandIn(StandIn):
    def __init__(self, *, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET,
                 refresh_token: str = REFRESH_TOKEN, expires_in: int = 3600, token_limit: int = 10,
                 live_token_cap: int = 10, deal_key_field: str = "Stripe_PaymentIntent",
                 token_grant_delay: float = 0.0) -> None:
        super().__init__()
        self.client_id, self.client_secret, self.refresh_token = client_id, client_secret, refresh_token
        self.expires_in = expires_in
        self.token_limit = token_limit
        self.live_token_cap = live_token_cap
        self.token_grant_delay = token_grant_delay  # makes concurrent refreshes overlap in tests
        self.tokens: dict[str, float] = {}  # live access token -> expiry (monotonic seconds)
        self.grants: deque[float] = deque()
        self.token_grants = 0  # access tokens minted
        self.records: dict[str, dict[str, dict[str, Any]]] = {"Contacts": {}, "Deals": {}}
        self.unique_fields: dict[str, set[str]] = {"Contacts": {"Email"}, "Deals": {deal_key_field}}
        self.mandatory: dict[str, list[str]] = {"Contacts": ["Last_Name"], "Deals": ["Deal_Name", "Stage"]}
        self._ids = itertools.count(5725767000000411001)
        self._state = threading.Lock()

    # ---- test helpers ---------------------------------------------------------------------
    def expire_tokens(self) -> None:
        """The server's clock passed every token's expiry (or they were revoked)."""
        with self._state:
            for token in self.tokens:
                self.tokens[token] = 0.0

    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")
                and r.path.startswith("/crm/")]

    @staticmethod
    def record_error(code: str = "MANDATORY_NOT_FOUND", api_name: str = "Closing_Date",
                     path_contains: str = "/upsert") -> Fault:
        """A 2xx answer whose only data[] entry failed (Zoho's in-band failure)."""
        return Fault(status=200, path_contains=path_contains, body={"data": [{
            "code": code, "details": {"api_name": api_name, "json_path": f"$.data[0].{api_name}"},
            "message": "required field not found" if code == "MANDATORY_NOT_FOUND" else "invalid data",
            "status": "error"}]})

    @staticmethod
    def too_many_requests(retry_after: int | None = None, path_contains: str = "/crm/") -> Fault:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        return Fault(status=429, headers=headers, path_contains=path_contains, body={
            "code": "TOO_MANY_REQUESTS", "details": {}, "message": "too many requests", "status": "error"})

    # ---- dispatch -------------------------------------------------------------------------------
    def handle(self, request: Request, recorded: Recorded) -> Response:
        path = recorded.path
        if path == "/oauth/v2/token" and request.method == "POST":
            return self._token(request)
        if not path.startswith("/crm/v8/"):
            return json_response({"code": "INVALID_URL_PATTERN", "details": {}, "message": "Please check if the URL "
                                   "trying to access is a correct one", "status": "error"}, 404)
        denied = self._authenticate(request)
        if denied is not None:
            return denied
        parts = path[len("/crm/v8/"):].strip("/").split("/")
        if parts == ["users"] and request.method == "GET":
            return json_response({"users": [{"id": "5725767000000411000", "full_name": "Ops", "email":
                                             "ops@example.fi", "status": "active"}], "info": {"count": 1}})
        module = parts[0]
        if module not in self.records:
            return json_response({"code": "INVALID_MODULE", "details": {}, "message": "the module name given "
                                  "seems to be invalid", "status": "error"}, 400)
        if len(parts) == 2 and parts[1] == "search" and request.method == "GET":
            return self._search(module, request)
        if len(parts) == 2 and parts[1] == "upsert" and request.method == "POST":
            return self._write(module, recorded, upsert=True)
        if len(parts) == 1 and request.method == "POST":
            return self._write(module, recorded, upsert=False)
        if len(parts) == 2 and request.method == "GET":
            record = self.records[module].get(parts[1])
            if record is None:
                return Response(status=204)
            return json_response({"data": [self._out(module, record)]})
        return json_response({"code": "INVALID_URL_PATTERN", "details": {}, "message": "invalid url",
                              "status": "error"}, 404)

    # ---- accounts -------------------------------------------------------------------------------
    def _token(self, request: Request) -> Response:
        params = dict(request.args.items()) | dict(request.form.items())  # docs: query; SDK: form body
        if self.token_grant_delay:
            time.sleep(self.token_grant_delay)
        if params.get("grant_type") != "refresh_token":
            return json_response({"error": "unsupported_grant_type"})
        if params.get("client_id") != self.client_id or params.get("client_secret") != self.client_secret:
            return json_response({"error": "invalid_client"})
        if params.get("refresh_token") != self.refresh_token:
            return json_response({"error": "invalid_code"})
        now = time.monotonic()
        with self._state:
            while self.grants and self.grants[0] < now - 600:
                self.grants.popleft()
            if len(self.grants) >= self.token_limit:
                return json_response(THROTTLE_BODY)  # HTTP status unconfirmed; commonly 200
            self.grants.append(now)
            self.token_grants += 1
            token = f"1000.{secrets.token_hex(16)}.{secrets.token_hex(16)}"
            self.tokens[token] = now + self.expires_in
            while len(self.tokens) > self.live_token_cap:  # the oldest live token silently dies
                del self.tokens[next(iter(self.tokens))]
        return json_response({"access_token": token, "api_domain": "https://www.zohoapis.eu", "token_type": "Bearer",
                              "expires_in": self.expires_in, "scope": "ZohoCRM.modules.ALL,ZohoCRM.users.READ"})

    def _authenticate(self, request: Request) -> Response | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Zoho-oauthtoken "):
            return json_response({"code": "AUTHENTICATION_FAILURE", "details": {},
                                  "message": "Authentication failed", "status": "error"}, 401)
        token = header[len("Zoho-oauthtoken "):]
        with self._state:
            expiry = self.tokens.get(token)
        if expiry is None or expiry <= time.monotonic():
            return json_response({"code": "INVALID_TOKEN", "details": {}, "message": "invalid oauth token",
                                  "status": "error"}, 401)
        return None

    # ---- records --------------------------------------------------------------------------------
    def _search(self, module: str, request: Request) -> Response:
        criteria = request.args.get("criteria", "")
        conditions = re.findall(r"\(([A-Za-z0-9_]+):(equals|starts_with):((?:\\.|[^)\\])*)\)", criteria)
        if not conditions:
            return json_response({"code": "INVALID_QUERY", "details": {"reason": "invalid criteria"},
                                  "message": "Invalid query formed", "status": "error"}, 400)
        matches = []
        for record in self.records[module].values():
            ok = True
            for name, op, raw in conditions:
                value = re.sub(r"\\(.)", r"\1", raw)
                have = str(record.get(name, ""))
                ok &= have.lower() == value.lower() if op == "equals" else have.lower().startswith(value.lower())
            if ok:
                matches.append(self._out(module, record))
        if not matches:
            return Response(status=204)  # empty body, not JSON
        return json_response({"data": matches, "info": {"per_page": 200, "count": len(matches), "page": 1,
                                                        "more_records": False}})

    def _write(self, module: str, recorded: Recorded, *, upsert: bool) -> Response:
        try:
            body = json.loads(recorded.body, parse_float=Decimal)
        except ValueError:
            return json_response({"code": "INVALID_DATA", "details": {}, "message": "body is not JSON",
                                  "status": "error"}, 400)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not data:
            return json_response({"code": "MANDATORY_NOT_FOUND", "details": {"api_name": "data"},
                                  "message": "required field not found", "status": "error"}, 400)
        if len(data) > 100:
            return json_response({"code": "LIMIT_EXCEEDED", "details": {"limit": 100}, "message": "the number of "
                                  "records exceeds the limit", "status": "error"}, 400)
        check_fields = body.get("duplicate_check_fields")
        if upsert and check_fields is None:
            check_fields = SYSTEM_DUPLICATE_FIELDS.get(module, []) + sorted(self.unique_fields[module])
        for name in check_fields or []:
            if name not in self.unique_fields[module] and name not in SYSTEM_DUPLICATE_FIELDS.get(module, []):
                return json_response({"code": "INVALID_DATA", "details": {"api_name": "duplicate_check_fields"},
                                      "message": f"{name} is not a unique field", "status": "error"}, 400)
        with self._state:
            results = [self._one(module, i, rec, check_fields if upsert else None) for i, rec in enumerate(data)]
        status = 200 if upsert else 201
        return json_response({"data": results}, status)

    def _one(self, module: str, i: int, fields: Any, check_fields: list[str] | None) -> dict[str, Any]:
        def error(code: str, api_name: str, message: str) -> dict[str, Any]:
            return {"code": code, "details": {"api_name": api_name, "json_path": f"$.data[{i}].{api_name}"},
                    "message": message, "status": "error"}

        if not isinstance(fields, dict):
            return error("INVALID_DATA", "data", "invalid data")
        for name in self.mandatory[module]:
            if fields.get(name) in (None, ""):
                return error("MANDATORY_NOT_FOUND", name, "required field not found")
        if "Email" in fields and not EMAIL.match(str(fields["Email"])):
            return {"code": "INVALID_DATA", "details": {"api_name": "Email", "expected_data_type": "email",
                                                        "json_path": f"$.data[{i}].Email"},
                    "message": "invalid data", "status": "error"}
        contact = fields.get("Contact_Name")
        if contact is not None and (not isinstance(contact, dict) or contact.get("id") not in self.records["Contacts"]):
            return error("INVALID_DATA", "Contact_Name", "invalid data")
        amount = fields.get("Amount")
        if amount is not None and not isinstance(amount, int | Decimal):
            return {"code": "INVALID_DATA", "details": {"api_name": "Amount", "expected_data_type": "currency",
                                                        "json_path": f"$.data[{i}].Amount"},
                    "message": "invalid data", "status": "error"}
        store = self.records[module]
        now = datetime.now(UTC).astimezone().isoformat(timespec="seconds")
        for name in check_fields or []:
            if fields.get(name) in (None, ""):
                continue
            existing = self._find(module, name, fields[name])
            if existing is not None:
                existing.update(fields)
                existing["Modified_Time"] = now
                return {"code": "SUCCESS", "duplicate_field": name, "action": "update",
                        "details": self._details(existing), "message": "record updated", "status": "success"}
        for name in self.unique_fields[module]:
            if fields.get(name) not in (None, "") and self._find(module, name, fields[name]) is not None:
                return {"code": "DUPLICATE_DATA", "details": {"api_name": name, "json_path": f"$.data[{i}].{name}",
                                                              "id": self._find(module, name, fields[name])["id"]},
                        "message": "duplicate data", "status": "error"}
        record = dict(fields) | {"id": str(next(self._ids)), "Created_Time": now, "Modified_Time": now}
        store[record["id"]] = record
        result = {"code": "SUCCESS", "details": self._details(record), "message": "record added", "status": "success"}
        if check_fields is not None:
            result |= {"duplicate_field": None, "action": "insert"}
        return result

    def _find(self, module: str, name: str, value: Any) -> dict[str, Any] | None:
        for record in self.records[module].values():
            have = record.get(name)
            if have is not None and str(have).lower() == str(value).lower():
                return record
        return None

    @staticmethod
    def _details(record: dict[str, Any]) -> dict[str, Any]:
        ops = {"name": "Ops", "id": "5725767000000411000"}
        return {"id": record["id"], "Modified_Time": record["Modified_Time"], "Created_Time": record["Created_Time"],
                "Created_By": ops, "Modified_By": ops}

    def _out(self, module: str, record: dict[str, Any]) -> dict[str, Any]:
        out = dict(record)
        contact = out.get("Contact_Name")
        if isinstance(contact, dict) and contact.get("id") in self.records["Contacts"]:
            person = self.records["Contacts"][contact["id"]]
            name = " ".join(x for x in (person.get("First_Name"), person.get("Last_Name")) if x)
            out["Contact_Name"] = {"name": name, "id": contact["id"]}
        return out
