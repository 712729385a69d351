"""The baseline for the receiver benchmark: a bare Flask app under the same gunicorn settings.

`POST /webhooks/stripe` reads the body and answers a small JSON document, nothing else
(no signature check, no database): what the framework and server alone cost per request.
"""

from __future__ import annotations

from flask import Flask, jsonify, request

app = Flask("bare")


@app.post("/webhooks/stripe")
def hook() -> tuple[object, int]:
    request.get_data(cache=False)
    return jsonify({"status": "duplicate", "event_id": "evt_bare", "order_id": "pi_bare"}), 200


@app.get("/healthz")
def healthz() -> tuple[object, int]:
    return jsonify({"status": "ok"}), 200
