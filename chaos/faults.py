"""Vendor stand-ins (tests/standins/*) that misbehave at random, at rates the suite sets.

Each request to one of a stand-in's ``chaos_paths`` draws, from a seeded generator:
5xx (not processed), 429 with ``Retry-After`` (not processed), or "accepted, then the answer
was lost" (processed, then the connection dropped, or — ``slow_timeouts`` — the answer held
back past the client's 20 s timeout). Faults queued with ``inject()`` still come first.
What the stand-ins count (``bookings``, ``messages``, ``records``) is what the vendor
actually accepted, faults included.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field

from tests.standins.mailgun import MailgunStandIn
from tests.standins.postnord import PostNordStandIn
from tests.standins.slack import SlackStandIn
from tests.standins.wsgi_thread import Drop, Fault, Respond
from tests.standins.zoho import ZohoStandIn


@dataclass
class Rates:
    server_error: float = 0.0  # 500/502/503, nothing done
    rate_limited: float = 0.0  # 429 + Retry-After, nothing done
    lost: float = 0.0  # done, answer lost
    retry_after: int = 1
    slow_timeouts: bool = False  # lost answers as a 21 s stall (client timeout) instead of a cut connection

    @property
    def off(self) -> bool:
        return not (self.server_error or self.rate_limited or self.lost)


@dataclass
class FaultLog:
    drawn: Counter[str] = field(default_factory=Counter)


class ChaosMixin:
    chaos_paths: tuple[str, ...] = ()

    def chaos_init(self, seed: int) -> None:
        self.rates = Rates()
        self.fault_log = FaultLog()
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()

    def start(self):  # type: ignore[no-untyped-def]
        started = super().start()  # type: ignore[misc]
        self._server.handle_error = lambda *_a: None  # a dropped connection is the point, not news
        return started

    def _take_fault(self, path: str):  # type: ignore[no-untyped-def]
        queued = super()._take_fault(path)  # type: ignore[misc]
        if queued is not None or self.rates.off or not any(p in path for p in self.chaos_paths):
            return queued
        with self._rng_lock:
            x = self._rng.random()
            status = self._rng.choice((500, 502, 503))
        r = self.rates
        if x < r.server_error:
            self.fault_log.drawn[f"{status}"] += 1
            return Respond(status, "Internal Server Error" if status == 500 else "Service Unavailable")
        if x < r.server_error + r.rate_limited:
            self.fault_log.drawn["429"] += 1
            return Fault(status=429, body={"message": "Too many requests"},
                         headers={"Retry-After": str(r.retry_after)})
        if x < r.server_error + r.rate_limited + r.lost:
            self.fault_log.drawn["lost"] += 1
            return Fault(then_process=True, delay=21.0) if r.slow_timeouts else Drop()
        return None


class ChaosPostNord(ChaosMixin, PostNordStandIn):
    chaos_paths = ("/rest/shipment/",)

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.chaos_init(seed)


class ChaosMailgun(ChaosMixin, MailgunStandIn):
    chaos_paths = ("/messages",)

    def __init__(self, seed: int, api_key: str, domain: str) -> None:
        super().__init__(api_key=api_key, domain=domain)
        self.chaos_init(seed)

    def per_order(self) -> Counter[str]:
        return Counter(m.one("v:order_id") or "?" for m in self.messages)


class ChaosZoho(ChaosMixin, ZohoStandIn):
    chaos_paths = ("/crm/v8/",)

    def __init__(self, seed: int) -> None:
        # a generous token budget: the suite restarts workers, each may mint one
        super().__init__(token_limit=500, live_token_cap=50)
        self.chaos_init(seed)

    def deals_per_order(self) -> Counter[str]:
        with self._state:
            return Counter(str(d.get("Stripe_PaymentIntent")) for d in self.records["Deals"].values())


class Alerts(SlackStandIn):
    """Slack, never faulted: the alerts people would get."""

    def texts(self) -> list[str]:
        return [str(m.get("text", "")) for m in self.messages]


def postnord_per_order(p: PostNordStandIn) -> Counter[str]:
    with p._state:
        return Counter(b.message_id.rsplit("-", 1)[0] for b in p.bookings)
