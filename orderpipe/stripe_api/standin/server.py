"""A small Stripe API stand-in: the reads orderpipe makes, in Stripe's wire format.

Implements (GET): ``/v1/payment_intents[/<id>]`` (``expand[]=latest_charge``),
``/v1/checkout/sessions[/<id>]``, ``/v1/checkout/sessions/<id>/line_items``,
``/v1/customers/<id>``, ``/v1/events[/<id>]``, ``/v1/balance``, ``/v1/charges[/<id>]``,
``/v1/refunds[/<id>]`` and ``/v1/disputes[/<id>]`` (lists filtered by ``charge``,
``payment_intent``, ``created``), ``/v1/invoice_payments`` (``payment[type]``,
``payment[payment_intent]``, ``invoice``). Bearer (or Basic) auth, ``expand[]=x`` and ``expand[0]=x``, list paging with
``limit``/``starting_after``/``has_more``, Stripe error objects, a ``Request-Id`` header.

Control endpoints for tests and the demo live under ``/_standin/`` (no auth; local only):

- ``POST /_standin/orders`` ``{"payment_intent", "session"?, "line_items"?, "customer"?, "products"?}``
- ``GET /_standin/orders``; ``POST /_standin/seed`` (the sample orders)
- ``POST /_standin/failures`` ``{"path_prefix", "status", "count"?, "method"?, "should_retry"?}``;
  ``DELETE /_standin/failures``
- ``GET|DELETE /_standin/requests`` (the request log, without credentials)
- ``POST /_standin/events`` ``{"order_id", "type", "delivered"?, "created"?, "overrides"?}`` -> the event;
  ``POST /_standin/events/<id>/delivery`` ``{"delivered": bool}``
"""

from __future__ import annotations

import base64
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask, Response, g, jsonify, request
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from orderpipe.stripe_api.standin import events as event_builder
from orderpipe.stripe_api.standin.store import StandinStore

Obj = dict[str, Any]

_KEY_RE = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


class StripeApiError(Exception):
    def __init__(self, status: int, message: str, *, type_: str = "invalid_request_error",
                 code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = status, message, type_, code, param

    def body(self) -> Obj:
        error: Obj = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://docs.stripe.com/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        if g.get("request_id"):
            error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{g.request_id}"
        return {"error": error}


def parse_params(pairs: Iterable[tuple[str, str]]) -> Obj:
    """Stripe form/query encoding to nested values.

    ``a=1`` -> scalar; ``a[]=x`` and ``a[0]=x`` -> list (indexed entries ordered by index);
    ``a[b]=x`` -> dict. One level of nesting is all the reads need.
    """
    out: Obj = {}
    indexed: dict[str, dict[int, str]] = {}
    for key, value in pairs:
        m = _KEY_RE.match(key)
        if not m:
            raise StripeApiError(400, f"Invalid parameter name: {key}", param=key)
        name, rest = m.group(1), m.group(2)
        parts = re.findall(r"\[([^\[\]]*)\]", rest)
        if not parts:
            out[name] = value
        elif len(parts) > 1:
            raise StripeApiError(400, f"Received unsupported nested parameter: {key}", param=key)
        elif parts[0] == "":
            out.setdefault(name, [])
            if not isinstance(out[name], list):
                raise StripeApiError(400, f"Invalid array: {name}", param=name)
            out[name].append(value)
        elif parts[0].isdigit():
            indexed.setdefault(name, {})[int(parts[0])] = value
        else:
            out.setdefault(name, {})
            if not isinstance(out[name], dict):
                raise StripeApiError(400, f"Invalid hash: {name}", param=name)
            out[name][parts[0]] = value
    for name, by_index in indexed.items():
        existing = out.get(name, [])
        if not isinstance(existing, list):
            raise StripeApiError(400, f"Invalid array: {name}", param=name)
        out[name] = existing + [by_index[i] for i in sorted(by_index)]
    return out


def _limit(params: Obj) -> int:
    raw = params.get("limit", "10")
    if not isinstance(raw, str) or not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise StripeApiError(400, "Invalid integer: limit must be between 1 and 100", param="limit")
    return int(raw)


def _paginate(items: list[Obj], params: Obj, url: str, kind: str) -> Obj:
    limit = _limit(params)
    start = 0
    after = params.get("starting_after")
    before = params.get("ending_before")
    if after:
        ids = [i["id"] for i in items]
        if after not in ids:
            raise StripeApiError(400, f"No such {kind}: '{after}'", code="resource_missing", param="starting_after")
        start = ids.index(after) + 1
    if before:
        ids = [i["id"] for i in items]
        if before not in ids:
            raise StripeApiError(400, f"No such {kind}: '{before}'", code="resource_missing", param="ending_before")
        end = ids.index(before)
        page = items[max(0, end - limit):end]
        return {"object": "list", "url": url, "has_more": end - limit > 0, "data": page}
    page = items[start:start + limit]
    return {"object": "list", "url": url, "has_more": start + limit < len(items), "data": page}


def _created_filter(params: Obj) -> Callable[[Obj], bool]:
    raw = params.get("created")
    if raw is None:
        return lambda _obj: True
    bounds = raw if isinstance(raw, dict) else {"eq": raw}
    checks: list[Callable[[int], bool]] = []
    for op, value in bounds.items():
        if not isinstance(value, str) or not value.lstrip("-").isdigit():
            raise StripeApiError(400, f"Invalid integer: {value}", param=f"created[{op}]")
        v = int(value)
        ops: dict[str, Callable[[int], bool]] = {
            "gte": lambda c, v=v: c >= v, "gt": lambda c, v=v: c > v,
            "lte": lambda c, v=v: c <= v, "lt": lambda c, v=v: c < v, "eq": lambda c, v=v: c == v,
        }
        if op not in ops:
            raise StripeApiError(400, f"Received unknown parameter: created[{op}]", param=f"created[{op}]")
        checks.append(ops[op])
    return lambda obj: all(check(int(obj.get("created", 0))) for check in checks)


def _expand(params: Obj, allowed: set[str]) -> set[str]:
    raw = params.get("expand", [])
    values = raw if isinstance(raw, list) else [raw]
    for value in values:
        if value not in allowed:
            raise StripeApiError(400, f"This property cannot be expanded ({value}).", param="expand")
    return set(values)


def _newest_first(objs: Iterable[Obj]) -> list[Obj]:
    indexed = list(enumerate(objs))
    indexed.sort(key=lambda pair: (pair[1].get("created", 0), pair[0]), reverse=True)
    return [obj for _, obj in indexed]


def _missing(kind: str, obj_id: str) -> StripeApiError:
    return StripeApiError(404, f"No such {kind}: '{obj_id}'", code="resource_missing", param="id")


def _redact(key: str) -> str:
    return key[:8] + "*" * 8 + key[-4:] if len(key) > 12 else "*" * len(key)


def _api_key() -> str | None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    if header.startswith("Basic "):
        try:
            return base64.b64decode(header[6:]).decode("utf-8").split(":", 1)[0]
        except (ValueError, UnicodeDecodeError):
            return None
    return None


def create_app(store: StandinStore) -> Flask:
    """The stand-in as a Flask app; all state lives in ``store``."""
    app = Flask("orderpipe.stripe_api.standin")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.ensure_ascii = False  # type: ignore[attr-defined]

    def render(name: str, obj: Obj, expand: set[str]) -> Obj:
        return _render(store, name, obj, expand)

    @app.before_request
    def _guard() -> Any:
        g.request_id = "req_" + uuid.uuid4().hex[:14]
        if not request.path.startswith("/v1/"):
            return None
        key = _api_key()
        if not key:
            raise StripeApiError(401, "You did not provide an API key. You need to provide your API key in the "
                                      "Authorization header, using Bearer auth "
                                      "(e.g. 'Authorization: Bearer YOUR_SECRET_KEY').")
        if not store.key_is_valid(key):
            raise StripeApiError(401, f"Invalid API Key provided: {_redact(key)}", code="api_key_invalid")
        failure = store.take_failure(request.method, request.path)
        if failure is not None:
            if failure.status == 429:
                err = StripeApiError(429, "Request rate limit exceeded. Learn more about rate limits here "
                                          "https://docs.stripe.com/rate-limits.", code="rate_limit")
            elif failure.status >= 500:
                err = StripeApiError(failure.status, "An unknown error occurred (injected by the stand-in).",
                                     type_="api_error")
            else:
                err = StripeApiError(failure.status, "Injected failure (stand-in).")
            g.should_retry = failure.should_retry
            raise err
        g.params = parse_params(request.args.items(multi=True))
        return None

    @app.errorhandler(StripeApiError)
    def _stripe_error(err: StripeApiError) -> Response:
        response = jsonify(err.body())
        response.status_code = err.status
        return response

    @app.after_request
    def _headers(response: Response) -> Response:
        response.headers["Request-Id"] = g.get("request_id", "req_unknown")
        if request.path.startswith("/v1/"):
            response.headers["Stripe-Version"] = request.headers.get("Stripe-Version", "2025-03-31.basil")
            should_retry = g.get("should_retry")
            if should_retry is not None:
                response.headers["Stripe-Should-Retry"] = "true" if should_retry else "false"
            store.log_request({
                "method": request.method,
                "path": request.path,
                "query_string": request.query_string.decode("utf-8", "replace"),
                "args": [[k, v] for k, v in request.args.items(multi=True)],
                "status": response.status_code,
                "request_id": response.headers["Request-Id"],
                "stripe_version": request.headers.get("Stripe-Version"),
                "time": time.time(),
            })
        return response

    # ---- payment intents ------------------------------------------------------------
    @app.get("/v1/payment_intents/<pi_id>")
    def get_payment_intent(pi_id: str) -> Any:
        expand = _expand(g.params, {"customer", "latest_charge"})
        with store.lock:
            pi = store.payment_intents.get(pi_id)
            if pi is None:
                raise _missing("payment_intent", pi_id)
            return render("payment_intent", pi, expand)

    @app.get("/v1/payment_intents")
    def list_payment_intents() -> Any:
        params = g.params
        expand = _expand(params, {"data.customer"})
        created_ok = _created_filter(params)
        customer = params.get("customer")
        with store.lock:
            items = [pi for pi in store.payment_intents.values()
                     if created_ok(pi) and (customer is None or pi.get("customer") == customer)]
            page = _paginate(_newest_first(items), params, "/v1/payment_intents", "payment_intent")
            page["data"] = [render("payment_intent", pi, _sub(expand)) for pi in page["data"]]
            return page

    # ---- charges, refunds, disputes, invoice payments ---------------------------------
    @app.get("/v1/charges/<ch_id>")
    def get_charge(ch_id: str) -> Any:
        _expand(g.params, {"payment_intent", "customer"})
        with store.lock:
            _materialise_charges(store)
            charge = store.charges.get(ch_id)
            if charge is None:
                raise _missing("charge", ch_id)
            return dict(charge)

    @app.get("/v1/charges")
    def list_charges() -> Any:
        params = g.params
        created_ok = _created_filter(params)
        with store.lock:
            _materialise_charges(store)
            items = [c for c in store.charges.values() if created_ok(c) and _matches(c, params, ("payment_intent",
                                                                                                  "customer"))]
            return _paginate(_newest_first(items), params, "/v1/charges", "charge")

    @app.get("/v1/refunds/<re_id>")
    def get_refund(re_id: str) -> Any:
        _expand(g.params, {"charge", "payment_intent"})
        with store.lock:
            refund = store.refunds.get(re_id)
            if refund is None:
                raise _missing("refund", re_id)
            return dict(refund)

    @app.get("/v1/refunds")
    def list_refunds() -> Any:
        params = g.params
        created_ok = _created_filter(params)
        with store.lock:
            items = [r for r in store.refunds.values()
                     if created_ok(r) and _matches(r, params, ("charge", "payment_intent"))]
            return _paginate(_newest_first(items), params, "/v1/refunds", "refund")

    @app.get("/v1/disputes/<du_id>")
    def get_dispute(du_id: str) -> Any:
        _expand(g.params, {"charge", "payment_intent"})
        with store.lock:
            dispute = store.disputes.get(du_id)
            if dispute is None:
                raise _missing("dispute", du_id)
            return dict(dispute)

    @app.get("/v1/disputes")
    def list_disputes() -> Any:
        params = g.params
        created_ok = _created_filter(params)
        with store.lock:
            items = [d for d in store.disputes.values()
                     if created_ok(d) and _matches(d, params, ("charge", "payment_intent"))]
            return _paginate(_newest_first(items), params, "/v1/disputes", "dispute")

    @app.get("/v1/invoice_payments")
    def list_invoice_payments() -> Any:
        params = g.params
        payment = params.get("payment") or {}
        if not isinstance(payment, dict):
            raise StripeApiError(400, "Invalid hash: payment", param="payment")
        with store.lock:
            items = [p for p in store.invoice_payments
                     if ("invoice" not in params or p["invoice"] == params["invoice"])
                     and ("status" not in params or p["status"] == params["status"])
                     and all(p["payment"].get(k) == v for k, v in payment.items())]
            return _paginate(_newest_first(items), params, "/v1/invoice_payments", "invoice_payment")

    # ---- checkout sessions ----------------------------------------------------------
    @app.get("/v1/checkout/sessions/<cs_id>")
    def get_session(cs_id: str) -> Any:
        expand = _expand(g.params, {"payment_intent", "line_items", "customer", "total_details.breakdown"})
        with store.lock:
            session = store.sessions.get(cs_id)
            if session is None:
                raise _missing("checkout.session", cs_id)
            return render("session", session, expand)

    @app.get("/v1/checkout/sessions")
    def list_sessions() -> Any:
        params = g.params
        expand = _expand(params, {"data.payment_intent", "data.line_items", "data.customer"})
        created_ok = _created_filter(params)
        filters = {k: params[k] for k in ("payment_intent", "customer", "status", "payment_link") if k in params}
        with store.lock:
            items = [s for s in store.sessions.values()
                     if created_ok(s) and all(s.get(k) == v for k, v in filters.items())]
            page = _paginate(_newest_first(items), params, "/v1/checkout/sessions", "checkout.session")
            page["data"] = [render("session", s, _sub(expand)) for s in page["data"]]
            return page

    @app.get("/v1/checkout/sessions/<cs_id>/line_items")
    def list_line_items(cs_id: str) -> Any:
        params = g.params
        expand = _expand(params, {"data.price", "data.price.product", "data.taxes", "data.discounts"})
        with store.lock:
            if cs_id not in store.sessions:
                raise _missing("checkout.session", cs_id)
            url = f"/v1/checkout/sessions/{cs_id}/line_items"
            page = _paginate(store.line_items.get(cs_id, []), params, url, "item")
            page["data"] = [_render_item(store, item, _sub(expand)) for item in page["data"]]
            return page

    # ---- customers, balance ---------------------------------------------------------
    @app.get("/v1/customers/<cus_id>")
    def get_customer(cus_id: str) -> Any:
        _expand(g.params, {"tax_ids"})
        with store.lock:
            customer = store.customers.get(cus_id)
            if customer is None:
                raise _missing("customer", cus_id)
            return dict(customer)

    @app.get("/v1/balance")
    def get_balance() -> Any:
        empty = [{"amount": 0, "currency": "eur", "source_types": {"card": 0}}]
        return {"object": "balance", "available": empty, "pending": empty, "livemode": False}

    # ---- events ---------------------------------------------------------------------
    @app.get("/v1/events/<evt_id>")
    def get_event(evt_id: str) -> Any:
        for event, _delivered in store.event_views():
            if event["id"] == evt_id:
                return event
        raise _missing("event", evt_id)

    @app.get("/v1/events")
    def list_events() -> Any:
        params = g.params
        if "type" in params and "types" in params:
            raise StripeApiError(400, "You may only specify one of these parameters: type, types.", param="types")
        types = params.get("types")
        if types is not None and (not isinstance(types, list) or len(types) > 20):
            raise StripeApiError(400, "types must be an array of at most 20 event types", param="types")
        wanted = set(types) if types else ({params["type"]} if "type" in params else None)
        delivery = params.get("delivery_success")
        if delivery not in (None, "true", "false"):
            raise StripeApiError(400, "Invalid boolean: delivery_success", param="delivery_success")
        created_ok = _created_filter(params)
        items = [
            event for event, delivered in store.event_views()
            if created_ok(event)
            and (wanted is None or _type_matches(event["type"], wanted))
            and (delivery is None or delivered == (delivery == "true"))
        ]
        return _paginate(items, params, "/v1/events", "event")

    @app.route("/v1/<path:rest>", methods=["GET", "POST", "DELETE", "PUT", "PATCH"])
    def unknown(rest: str) -> Any:
        raise StripeApiError(404, f"Unrecognized request URL ({request.method}: /v1/{rest}). "
                                  "This stand-in implements only the reads orderpipe makes.")

    # ---- control endpoints ----------------------------------------------------------
    @app.post("/_standin/orders")
    def control_add_order() -> Any:
        body = request.get_json(force=True)
        try:
            order_id = store.add_order(body.get("payment_intent"), body.get("session"), body.get("line_items"),
                                       body.get("customer"), body.get("products"))
        except (KeyError, TypeError, ValueError) as exc:
            return jsonify({"error": f"bad order: {exc}"}), 400
        return jsonify({"order_id": order_id}), 201

    @app.get("/_standin/orders")
    def control_list_orders() -> Any:
        return {"order_ids": store.order_ids()}

    @app.post("/_standin/seed")
    def control_seed() -> Any:
        from orderpipe.stripe_api.standin.samples import seed_store

        return {"order_ids": seed_store(store)}

    @app.post("/_standin/failures")
    def control_fail() -> Any:
        body = request.get_json(force=True)
        try:
            store.fail_next(str(body["path_prefix"]), int(body["status"]), int(body.get("count", 1)),
                            method=body.get("method"), should_retry=body.get("should_retry"))
        except (KeyError, TypeError, ValueError) as exc:
            return jsonify({"error": f"bad failure rule: {exc}"}), 400
        return jsonify({"status": "armed"}), 201

    @app.delete("/_standin/failures")
    def control_clear_failures() -> Any:
        store.clear_failures()
        return {"status": "cleared"}

    @app.get("/_standin/requests")
    def control_requests() -> Any:
        return {"requests": store.request_log()}

    @app.delete("/_standin/requests")
    def control_clear_requests() -> Any:
        store.clear_request_log()
        return {"status": "cleared"}

    @app.post("/_standin/events")
    def control_add_event() -> Any:
        body = request.get_json(force=True)
        try:
            event = event_builder.order_event(
                store, str(body["order_id"]), str(body["type"]), delivered=bool(body.get("delivered", False)),
                created=body.get("created"), overrides=body.get("overrides"),
            )
        except (KeyError, ValueError) as exc:
            return jsonify({"error": str(exc).strip("'\"")}), 400
        return jsonify(event), 201

    @app.post("/_standin/refunds")
    def control_add_refund() -> Any:
        body = request.get_json(force=True)
        try:
            refund = store.add_refund(str(body["payment_intent"]), body.get("amount"),
                                      status=body.get("status", "succeeded"), reason=body.get("reason"),
                                      refund_id=body.get("id"))
        except (KeyError, TypeError, ValueError) as exc:
            return jsonify({"error": str(exc).strip("'\"")}), 400
        return jsonify(refund), 201

    @app.post("/_standin/disputes")
    def control_add_dispute() -> Any:
        body = request.get_json(force=True)
        try:
            dispute = store.add_dispute(str(body["payment_intent"]), body.get("amount"),
                                        reason=body.get("reason", "fraudulent"),
                                        status=body.get("status", "needs_response"), dispute_id=body.get("id"))
        except (KeyError, TypeError, ValueError) as exc:
            return jsonify({"error": str(exc).strip("'\"")}), 400
        return jsonify(dispute), 201

    @app.post("/_standin/disputes/<du_id>")
    def control_update_dispute(du_id: str) -> Any:
        if du_id not in store.disputes:
            return jsonify({"error": f"no dispute {du_id}"}), 404
        return jsonify(store.update_dispute(du_id, **request.get_json(force=True)))

    @app.post("/_standin/object_events")
    def control_object_event() -> Any:
        """``{"object_id": "re_..." | "ch_..." | "du_...", "type", "delivered"?}`` -> the event."""
        body = request.get_json(force=True)
        try:
            event = event_builder.object_event(store, str(body["object_id"]), str(body["type"]),
                                               delivered=bool(body.get("delivered", False)))
        except (KeyError, ValueError) as exc:
            return jsonify({"error": str(exc).strip("'\"")}), 400
        return jsonify(event), 201

    @app.post("/_standin/events/<evt_id>/delivery")
    def control_delivery(evt_id: str) -> Any:
        body = request.get_json(force=True)
        if not store.set_delivered(evt_id, bool(body.get("delivered", True))):
            return jsonify({"error": f"no event {evt_id}"}), 404
        return {"status": "ok"}

    return app


def _matches(obj: Obj, params: Obj, keys: tuple[str, ...]) -> bool:
    return all(obj.get(k) == params[k] for k in keys if k in params)


def _materialise_charges(store: StandinStore) -> None:
    """Every succeeded PaymentIntent has its charge (made on first use, as the store does)."""
    for pi_id, pi in store.payment_intents.items():
        if pi.get("status") == "succeeded" and pi.get("latest_charge") not in store.charges:
            store.charge_for(pi_id)


def _type_matches(event_type: str, wanted: set[str]) -> bool:
    """Stripe accepts wildcards such as ``checkout.session.*``."""
    return any(w == event_type or (w.endswith(".*") and event_type.startswith(w[:-1])) for w in wanted)


def _sub(expand: set[str]) -> set[str]:
    """``data.x.y`` -> ``x.y`` for the items of a list."""
    return {e[5:] for e in expand if e.startswith("data.")}


def _render(store: StandinStore, name: str, obj: Obj, expand: set[str]) -> Obj:
    out = dict(obj)
    if name == "payment_intent":
        if "customer" in expand and out.get("customer"):
            out["customer"] = store.customers.get(out["customer"], out["customer"])
        if "latest_charge" in expand and out.get("latest_charge") and out.get("status") == "succeeded":
            out["latest_charge"] = dict(store.charge_for(out["id"]))
        return out
    # checkout session
    if "payment_intent" in expand and out.get("payment_intent"):
        out["payment_intent"] = store.payment_intents.get(out["payment_intent"], out["payment_intent"])
    if "customer" in expand and out.get("customer"):
        out["customer"] = store.customers.get(out["customer"], out["customer"])
    if "line_items" in expand:
        items = store.line_items.get(out["id"], [])
        out["line_items"] = {
            "object": "list", "url": f"/v1/checkout/sessions/{out['id']}/line_items", "has_more": len(items) > 10,
            "data": [_render_item(store, item, set()) for item in items[:10]],
        }
    return out


def _render_item(store: StandinStore, item: Obj, expand: set[str]) -> Obj:
    out = dict(item)
    if "taxes" not in expand:
        out.pop("taxes", None)
    if "price.product" in expand and isinstance(out.get("price"), dict):
        price = dict(out["price"])
        product = price.get("product")
        if isinstance(product, str) and product in store.products:
            price["product"] = store.products[product]
        out["price"] = price
    return out


class QuietRequestHandler(WSGIRequestHandler):
    """No access log lines on stderr (the request log is at ``GET /_standin/requests``)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


def make_standin_server(store: StandinStore, host: str = "127.0.0.1", port: int = 0) -> BaseWSGIServer:
    """A threaded werkzeug server for the stand-in (port 0 picks a free port: see ``server_port``)."""
    return make_server(host, port, create_app(store), threaded=True, request_handler=QuietRequestHandler)


class StandinServer:
    """The stand-in on a werkzeug server in a background thread (``with StandinServer(store) as s: s.url``)."""

    def __init__(self, store: StandinStore, host: str = "127.0.0.1", port: int = 0) -> None:
        self.store = store
        self._server = make_standin_server(store, host, port)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="stripe-standin", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self._server.host}:{self._server.server_port}"

    def start(self) -> StandinServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> StandinServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
