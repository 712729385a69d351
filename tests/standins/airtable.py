"""A stateful local Airtable stand-in for one base and table (shared/docs/vendor-apis.md section 3).

Bearer auth; list with ``filterByFormula`` / ``maxRecords`` / ``pageSize`` / ``offset``;
create, ``performUpsert`` (``createdRecords`` / ``updatedRecords``), batch and single PATCH
(merge) and PUT (replace); the 10-record cap; unknown fields and select options (422 unless
``typecast``); both error envelopes (``{"error": {"type", "message"}}`` and ``{"error": "NOT_FOUND"}``);
5 requests/s per base, after which the base answers 429 for ``penalty_seconds`` (30 s).
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections import deque
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote

from werkzeug.wrappers import Request, Response

from tests.standins.wsgi_thread import Fault, Recorded, StandIn, json_response

TOKEN = "patSTANDIN.0123456789abcdef"
BASE_ID = "appSTANDIN0000001"
TABLE = "Production log"
FIELDS = {"Order ID": "text", "Customer": "text", "Country": "text", "Items": "text", "Status": "select",
          "Amount": "number", "Currency": "text"}
FORMULA = re.compile(r"""^\{((?:\\.|[^}\\])+)\}\s*=\s*(?:'((?:\\.|[^'\\])*)'|"((?:\\.|[^"\\])*)")$""")


def _err(kind: str, message: str, status: int) -> Response:
    return json_response({"error": {"type": kind, "message": message}}, status)


class AirtableStandIn(StandIn):
    def __init__(self, *, token: str = TOKEN, base_id: str = BASE_ID, table: str = TABLE,
                 fields: dict[str, str] | None = None, select_options: dict[str, set[str]] | None = None,
                 requests_per_second: int | None = 5, penalty_seconds: float = 30.0,
                 retry_after_header: bool = False) -> None:
        super().__init__()
        self.token, self.base_id, self.table = token, base_id, table
        self.fields = dict(fields or FIELDS)
        self.select_options = select_options if select_options is not None else {"Status": {"Queued"}}
        self.requests_per_second = requests_per_second
        self.penalty_seconds = penalty_seconds
        self.retry_after_header = retry_after_header  # whether Airtable sends Retry-After is unconfirmed
        self.records: dict[str, dict[str, Any]] = {}
        self._recent: deque[float] = deque()
        self._penalty_until = 0.0
        self._ids = itertools.count(1)
        self._state = threading.Lock()

    # ---- test helpers ---------------------------------------------------------------------
    def writes(self) -> list[Recorded]:
        return [r for r in self.requests if r.method in ("POST", "PUT", "PATCH", "DELETE")]

    def rate_limited(self) -> Fault:
        return Fault(status=429, headers={"Retry-After": "30"} if self.retry_after_header else {},
                     body={"error": {"type": "RATE_LIMIT_REACHED",
                                     "message": "Rate limit exceeded. Please try again later"}})

    def by_order(self, order_id: str) -> list[dict[str, Any]]:
        return [r for r in self.records.values() if r["fields"].get("Order ID") == order_id]

    # ---- dispatch -------------------------------------------------------------------------------
    def handle(self, request: Request, recorded: Recorded) -> Response:
        limited = self._rate_limit()
        if limited is not None:
            return limited
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _err("AUTHENTICATION_REQUIRED", "Authentication required", 401)
        segments = [unquote(s) for s in recorded.raw_path.split("/")[1:]]
        if len(segments) < 3 or segments[0] != "v0":
            return json_response({"error": "NOT_FOUND"}, 404)
        if segments[1] != self.base_id or segments[2] != self.table:
            return _err("INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND", "Invalid permissions, or the requested model "
                        "was not found. Check that both your user and your token have the required permissions, "
                        "and that the model names and/or ids are correct.", 403)
        record_id = segments[3] if len(segments) > 3 else None
        body: Any = None
        if request.method in ("POST", "PATCH", "PUT"):
            try:
                body = json.loads(recorded.body, parse_float=Decimal)
            except ValueError:
                return _err("INVALID_REQUEST_UNKNOWN", "Invalid request: parameter validation failed. "
                            "Check your request data.", 400)
            if not isinstance(body, dict):
                return _err("INVALID_REQUEST_UNKNOWN", "Invalid request", 422)
        with self._state:
            if record_id is None and request.method == "GET":
                return self._list(request)
            if record_id is None and request.method == "POST":
                return self._create(body)
            if record_id is None and request.method == "PATCH":
                return self._upsert(body) if "performUpsert" in body else self._update_many(body)
            if record_id is not None and request.method == "GET":
                rec = self.records.get(record_id)
                return json_response(self._out(rec)) if rec else json_response({"error": "NOT_FOUND"}, 404)
            if record_id is not None and request.method in ("PATCH", "PUT"):
                return self._update_one(record_id, body, replace=request.method == "PUT")
        return json_response({"error": "NOT_FOUND"}, 404)

    def _rate_limit(self) -> Response | None:
        now = time.monotonic()
        with self._state:
            if now < self._penalty_until:
                return self.rate_limited_response()
            if self.requests_per_second is None:
                return None
            while self._recent and self._recent[0] <= now - 1.0:
                self._recent.popleft()
            if len(self._recent) >= self.requests_per_second:
                self._penalty_until = now + self.penalty_seconds
                self._recent.clear()  # the real 30 s penalty outlasts the 1 s window
                return self.rate_limited_response()
            self._recent.append(now)
        return None

    def rate_limited_response(self) -> Response:
        return self.rate_limited().response()

    # ---- operations -----------------------------------------------------------------------------
    def _list(self, request: Request) -> Response:
        formula = request.args.get("filterByFormula")
        try:
            max_records = int(request.args.get("maxRecords", "0")) or None
            page_size = int(request.args.get("pageSize", "100"))
        except ValueError:
            return _err("INVALID_REQUEST_UNKNOWN", "Invalid request: parameter validation failed.", 422)
        if not 1 <= page_size <= 100:
            return _err("INVALID_PAGE_SIZE_PARAMETER", "Invalid page size", 422)
        rows = list(self.records.values())
        if formula:
            m = FORMULA.match(formula.strip())
            if not m:
                return _err("INVALID_FILTER_BY_FORMULA", f"The formula for filtering records is invalid: {formula}",
                            422)
            name = re.sub(r"\\(.)", r"\1", m.group(1))
            if name not in self.fields:
                return _err("INVALID_FILTER_BY_FORMULA", f"Unknown field names: {name.lower()}", 422)
            value = re.sub(r"\\(.)", r"\1", m.group(2) if m.group(2) is not None else m.group(3))
            rows = [r for r in rows if str(r["fields"].get(name, "")) == value]
        if max_records:
            rows = rows[:max_records]
        start = int(request.args.get("offset", "0") or 0)
        page = rows[start:start + page_size]
        answer: dict[str, Any] = {"records": [self._out(r) for r in page]}
        if start + page_size < len(rows):
            answer["offset"] = str(start + page_size)
        return json_response(answer)

    def _create(self, body: dict[str, Any]) -> Response:
        records = body.get("records")
        problem = self._check_batch(records, body.get("typecast", False), need_id=False)
        if problem is not None:
            return problem
        created = [self._new(rec["fields"], body.get("typecast", False)) for rec in records]  # type: ignore[union-attr]
        return json_response({"records": [self._out(r) for r in created]})

    def _upsert(self, body: dict[str, Any]) -> Response:
        merge_on = (body.get("performUpsert") or {}).get("fieldsToMergeOn")
        if not isinstance(merge_on, list) or not 1 <= len(merge_on) <= 3:
            return _err("INVALID_REQUEST_UNKNOWN", "Invalid request: performUpsert.fieldsToMergeOn must list "
                        "1 to 3 fields", 422)
        records = body.get("records")
        typecast = bool(body.get("typecast", False))
        problem = self._check_batch(records, typecast, need_id=False)
        if problem is not None:
            return problem
        for rec in records:  # type: ignore[union-attr]
            if "id" not in rec and any(rec["fields"].get(f) in (None, "") for f in merge_on):
                return _err("INVALID_VALUE_FOR_COLUMN", "Every record needs a value for each fieldsToMergeOn field",
                            422)
        created_ids, updated_ids, out = [], [], []
        for rec in records:  # type: ignore[union-attr]
            matches = [r for r in self.records.values()
                       if all(r["fields"].get(f) == rec["fields"].get(f) for f in merge_on)]
            if len(matches) > 1:
                return _err("INVALID_REQUEST_UNKNOWN", "Cannot update more than one record with the same "
                            "fieldsToMergeOn values", 422)
            if matches:
                row = matches[0]
                row["fields"].update(self._clean(rec["fields"], typecast))
                updated_ids.append(row["id"])
            else:
                row = self._new(rec["fields"], typecast)
                created_ids.append(row["id"])
            out.append(self._out(row))
        return json_response({"records": out, "createdRecords": created_ids, "updatedRecords": updated_ids})

    def _update_many(self, body: dict[str, Any]) -> Response:
        records = body.get("records")
        problem = self._check_batch(records, body.get("typecast", False), need_id=True)
        if problem is not None:
            return problem
        out = []
        for rec in records:  # type: ignore[union-attr]
            row = self.records.get(rec["id"])
            if row is None:
                return json_response({"error": "NOT_FOUND"}, 404)
            row["fields"].update(self._clean(rec["fields"], bool(body.get("typecast"))))
            out.append(self._out(row))
        return json_response({"records": out})

    def _update_one(self, record_id: str, body: dict[str, Any], *, replace: bool) -> Response:
        row = self.records.get(record_id)
        if row is None:
            return json_response({"error": "NOT_FOUND"}, 404)
        fields = body.get("fields")
        typecast = bool(body.get("typecast", False))
        problem = self._check_fields(fields, typecast)
        if problem is not None:
            return problem
        cleaned = self._clean(fields, typecast)  # type: ignore[arg-type]
        row["fields"] = cleaned if replace else row["fields"] | cleaned
        return json_response(self._out(row))

    # ---- validation -----------------------------------------------------------------------------
    def _check_batch(self, records: Any, typecast: Any, *, need_id: bool) -> Response | None:
        if not isinstance(records, list) or not records:
            return _err("INVALID_RECORDS", "Could not find field \"records\" in the request body", 422)
        if len(records) > 10:
            return _err("INVALID_RECORDS", "You can only create or update up to 10 records per request", 422)
        for rec in records:
            if not isinstance(rec, dict) or (need_id and "id" not in rec):
                return _err("INVALID_RECORDS", "Invalid record", 422)
            problem = self._check_fields(rec.get("fields"), bool(typecast))
            if problem is not None:
                return problem
        return None

    def _check_fields(self, fields: Any, typecast: bool) -> Response | None:
        if not isinstance(fields, dict):
            return _err("INVALID_REQUEST_MISSING_FIELDS", "Could not find field \"fields\" in the request body", 422)
        for name, value in fields.items():
            kind = self.fields.get(name)
            if kind is None:
                return _err("UNKNOWN_FIELD_NAME", f'Unknown field name: "{name}"', 422)
            if value is None:
                continue
            if kind == "number" and (not isinstance(value, int | Decimal) or isinstance(value, bool)):
                if not (typecast and isinstance(value, str) and _decimal(value) is not None):
                    return _err("INVALID_VALUE_FOR_COLUMN", f'Field "{name}" cannot accept the provided value', 422)
            if kind in ("text", "select") and not isinstance(value, str):
                return _err("INVALID_VALUE_FOR_COLUMN", f'Field "{name}" cannot accept the provided value', 422)
            if kind == "select" and value not in self.select_options.get(name, set()) and not typecast:
                return _err("INVALID_MULTIPLE_CHOICE_OPTIONS",
                            f'Insufficient permissions to create new select option ""{value}""', 422)
        return None

    def _clean(self, fields: dict[str, Any], typecast: bool) -> dict[str, Any]:
        out = {}
        for name, value in fields.items():
            if self.fields[name] == "number" and isinstance(value, str):
                value = _decimal(value)
            if self.fields[name] == "select" and typecast and value is not None:
                self.select_options.setdefault(name, set()).add(value)
            out[name] = value
        return out

    def _new(self, fields: dict[str, Any], typecast: bool) -> dict[str, Any]:
        rec_id = f"rec{next(self._ids):014d}"
        row = {"id": rec_id, "createdTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
               "fields": self._clean(fields, typecast)}
        self.records[rec_id] = row
        return row

    @staticmethod
    def _out(row: dict[str, Any]) -> dict[str, Any]:
        # Empty fields are absent from Airtable's answers.
        fields = {k: v for k, v in row["fields"].items() if v not in (None, "", [])}
        return {"id": row["id"], "createdTime": row["createdTime"], "fields": fields}


def _decimal(value: str) -> Decimal | None:
    try:
        return Decimal(value)
    except InvalidOperation:
        return None
