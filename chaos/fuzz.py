"""Receiver fuzz: seeded random requests to ``POST /webhooks/stripe`` (and a few beside it).

Two families, drawn at random:

- **forgeries** — not signed by Stripe with the configured secret, now: no or malformed
  ``Stripe-Signature``, another secret, a body changed after signing, another body's
  signature, a stale timestamp. The receiver must answer 4xx: a 2xx is an accepted forgery.
- **signed junk** — signed correctly, but the body is anything: random JSON, deep nesting,
  invalid UTF-8, numbers out of range, events with wrong types, unknown event types, a body
  over 1 MiB. Any 2xx/4xx is fine; a 5xx is not (the database is up throughout).

Bodies that are JSON objects carry a canary string, so the log scan can tell whether the
receiver logged any part of a body.
"""

from __future__ import annotations

import json
import random
import secrets as pysecrets
import string
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from orderpipe.stripe_api.standin.events import build_event, signature_header

CANARY = "chaosCanary"
URL_SAFE = string.ascii_letters + string.digits + "-._~/"


@dataclass
class FuzzResult:
    requests: int = 0
    forgeries: int = 0
    accepted_forgeries: list[str] = field(default_factory=list)
    unexpected_5xx: list[str] = field(default_factory=list)
    by_status: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    forged_order_ids: set[str] = field(default_factory=set)
    seconds: float = 0.0


def _rand_text(rng: random.Random, n: int) -> str:
    alphabet = string.printable + "äöåéü€😀\u0000\u202e\ud7ff"
    return "".join(rng.choice(alphabet) for _ in range(n))


def _rand_json(rng: random.Random, depth: int = 0) -> Any:
    r = rng.random()
    if depth > 4 or r < 0.3:
        return rng.choice([None, True, False, rng.randint(-2**70, 2**70), rng.random() * 1e300, "",
                           _rand_text(rng, rng.randint(0, 40)), -0.0, 10**40])
    if r < 0.65:
        return {_rand_text(rng, rng.randint(0, 12)): _rand_json(rng, depth + 1) for _ in range(rng.randint(0, 5))}
    return [_rand_json(rng, depth + 1) for _ in range(rng.randint(0, 5))]


EVENT_TYPES = ["payment_intent.succeeded", "checkout.session.completed", "checkout.session.async_payment_succeeded",
               "payment_intent.payment_failed", "charge.refunded", "customer.created", "invoice.paid",
               "payment_intent.created", "charge.succeeded", "", "x" * 300]


class Fuzzer:
    def __init__(self, url: str, secret: str, seed: int) -> None:
        self.url = url
        self.base = url.rsplit("/webhooks/", 1)[0]
        self.secret = secret
        self.rng = random.Random(seed)
        self._lock = threading.Lock()
        self.result = FuzzResult()

    def _pi(self) -> str:
        return "pi_3Fuzz" + "".join(self.rng.choice(string.ascii_letters + string.digits) for _ in range(16))

    def _event(self) -> dict[str, Any]:
        """A plausible event for an order that does not exist (a forgery would fulfil it)."""
        pi = self._pi()
        etype = self.rng.choice(EVENT_TYPES[:3])
        obj: dict[str, Any] = ({"id": pi, "object": "payment_intent", "status": "succeeded", "amount": 4990,
                                "currency": "eur"} if etype.startswith("payment_intent")
                               else {"id": "cs_" + pi[3:], "object": "checkout.session", "payment_intent": pi,
                                     "payment_status": "paid"})
        obj["metadata"] = {"note": f"{CANARY}{pysecrets.token_hex(6)}"}
        return build_event(etype, obj)

    # ---- one request, drawn ----------------------------------------------------------------
    def draw(self) -> tuple[str, bool, str, bytes, dict[str, str]]:
        """(kind, forged, method+path, body, headers)."""
        rng = self.rng
        now = int(time.time())
        kind = rng.choices(
            ["no-sig", "wrong-secret", "tampered", "other-sig", "stale", "bad-header", "random-bytes",
             "signed-json", "signed-deep", "signed-bad-utf8", "signed-event-types", "signed-wrong-types",
             "signed-huge", "method-path", "signed-bignum"],
            weights=[8, 10, 10, 6, 8, 10, 5, 10, 2, 4, 8, 10, 0.3, 3, 3])[0]
        headers = {"Content-Type": "application/json"}
        path = "POST /webhooks/stripe"
        forged = kind in ("no-sig", "wrong-secret", "tampered", "other-sig", "stale", "bad-header", "random-bytes")
        body: bytes
        if forged:
            event = self._event()
            body = json.dumps(event, indent=rng.choice([None, 2])).encode()
            with self._lock:
                self.result.forged_order_ids.add(event["data"]["object"].get("payment_intent")
                                                 or event["data"]["object"]["id"])
            if kind == "wrong-secret":
                headers["Stripe-Signature"] = signature_header(body, "whsec_" + pysecrets.token_hex(16), now)
            elif kind == "tampered":
                sig = signature_header(body, self.secret, now)
                i = rng.randrange(len(body))
                body = body[:i] + bytes([(body[i] + rng.randint(1, 255)) % 256]) + body[i + 1:] \
                    if rng.random() < 0.7 else body + b" "
                headers["Stripe-Signature"] = sig
            elif kind == "other-sig":
                other = json.dumps(self._event()).encode()
                headers["Stripe-Signature"] = signature_header(other, self.secret, now)
            elif kind == "stale":
                t = now - rng.choice([301, 400, 3600, 86400 * 30, now])
                headers["Stripe-Signature"] = signature_header(body, self.secret, t)
            elif kind == "bad-header":
                good = signature_header(body, self.secret, now)
                v1 = good.split("v1=", 1)[1]
                headers["Stripe-Signature"] = rng.choice([
                    "", "t=", f"t={now}", f"v1={v1}", f"t=abc,v1={v1}", f"t={now},v0={v1}", f"t={now},v1=",
                    f"t={now},v1={v1[:-1]}", f"t={now},v1={v1.upper()}", f"t={now},v1={'0' * 64}",
                    f"t={now}.5,v1={v1}", f"t=-{now},v1={v1}", f"t={now},t={now + 1},v1={v1[::-1]}",
                    "t=" + "9" * 400 + f",v1={v1}", ",".join(["v1=" + "a" * 64] * 200), _rand_text(rng, 60)
                    .encode("ascii", "ignore").decode().replace("\n", "").replace("\r", "")])
            elif kind == "random-bytes":
                body = rng.randbytes(rng.randint(0, 3000))
                if rng.random() < 0.5:
                    headers["Stripe-Signature"] = f"t={now},v1={rng.randbytes(32).hex()}"
            return kind, True, path, body, headers
        if kind == "signed-json":
            value = _rand_json(rng)
            if isinstance(value, dict):
                value[CANARY] = CANARY + pysecrets.token_hex(6)
            body = json.dumps(value, ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
        elif kind == "signed-deep":
            n = rng.choice([100, 1000, 10_000, 100_000])
            open_, close = rng.choice([("[", "]"), ('{"a":', "}")])
            body = (open_ * n + "1" + close * n).encode()
        elif kind == "signed-bad-utf8":
            body = b'{"id": "evt_1", "type": "payment_intent.succeeded", "x": "\xff\xfe\xc3\x28"}'
        elif kind == "signed-bignum":
            body = rng.choice([b'{"id": 1e999999, "type": "x"}', b"NaN", b'{"created": Infinity}',
                               b'{"id": "evt_' + b"9" * 5000 + b'"}', b"-" + b"1" * 10000, b"\xef\xbb\xbf{}"])
        elif kind == "signed-event-types":
            event = build_event(rng.choice(EVENT_TYPES[3:]), {"id": "obj_" + pysecrets.token_hex(6),
                                                            "metadata": {"n": CANARY + pysecrets.token_hex(6)}})
            body = json.dumps(event).encode()
        elif kind == "signed-wrong-types":
            event = build_event(rng.choice(EVENT_TYPES[:4]), {"id": self._pi()})
            target = rng.choice(["id", "type", "data", "object", "pi", "payment_status", "created", "livemode"])
            weird = rng.choice([None, 1, -1, 1.5, [], {}, [1, 2], "", "x" * 10_000, True, {"id": {"id": None}}])
            if target in ("id", "type", "data", "created", "livemode"):
                event[target] = weird
            elif target == "object":
                event["data"]["object"] = weird
            elif target == "pi":
                event["type"] = "checkout.session.completed"
                event["data"]["object"] = {"id": "cs_x", "payment_intent": weird, "payment_status": "paid"}
            else:
                event["data"]["object"]["payment_status"] = weird
            event["metadata"] = CANARY + pysecrets.token_hex(6)
            body = json.dumps(event).encode()
        elif kind == "signed-huge":
            body = json.dumps({"id": "evt_big", "type": "customer.created", "pad": "x" * (1024 * 1024 + 10)}).encode()
        else:  # method-path
            path = rng.choice(["GET /webhooks/stripe", "PUT /webhooks/stripe", "POST /webhooks/stripe/",
                               "POST /webhooks/Stripe", "POST /webhooks/stripe?x=%00", "GET /healthz",
                               "POST /healthz",
                               "GET /" + "".join(rng.choice(URL_SAFE) for _ in range(rng.randint(0, 30)))])
            body = b"{}"
        headers["Stripe-Signature"] = self._sign_bytes(body, now)
        return kind, False, path, body, headers

    def _sign_bytes(self, body: bytes, now: int) -> str:
        import hashlib
        import hmac

        mac = hmac.new(self.secret.encode(), f"{now}.".encode() + body, hashlib.sha256).hexdigest()
        return f"t={now},v1={mac}"

    # ---- the run ----------------------------------------------------------------------------
    def run(self, n: int, threads: int = 8) -> FuzzResult:
        t0 = time.monotonic()
        draws = [self.draw() for _ in range(n)]
        local = threading.local()

        def one(d: tuple[str, bool, str, bytes, dict[str, str]]) -> None:
            kind, forged, path, body, headers = d
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = httpx.Client(timeout=30)
            method, _, rel = path.partition(" ")
            url = self.base + rel
            try:
                try:
                    r = client.request(method, url, content=body, headers=headers)
                except httpx.RemoteProtocolError:
                    # A kept-alive connection the server had just closed (gunicorn closes one after
                    # answering a request it could not parse): as any HTTP client, and as Stripe
                    # does, send it again on a new connection; a second failure counts.
                    client.close()
                    client = local.client = httpx.Client(timeout=30)
                    r = client.request(method, url, content=body, headers=headers)
                status = r.status_code
                answer = r.text[:200]
            except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeEncodeError):
                with self._lock:
                    self.result.by_kind["unsendable"] += 1
                return
            except httpx.HTTPError as exc:
                status, answer = -1, f"{type(exc).__name__}: {exc}"[:200]
            with self._lock:
                res = self.result
                res.requests += 1
                res.by_kind[kind] += 1
                res.by_status[str(status)] += 1
                if forged:
                    res.forgeries += 1
                    if 200 <= status < 300:
                        res.accepted_forgeries.append(f"{kind}: {status} {answer}")
                if status >= 500 or status < 0:
                    res.unexpected_5xx.append(f"{kind} ({len(body)} bytes): {status} {answer}")

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, draws))
        self.result.seconds = time.monotonic() - t0
        return self.result
