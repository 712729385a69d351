"""A Stripe-like webhook sender: at-least-once, redelivery with backoff on anything but 2xx
(timeouts and refused connections included), out of order, concurrent duplicates.

``plan(events, total)`` spreads ``total`` deliveries over the events (every event at least
once, some many times, some as bursts of simultaneous copies), shuffled. ``Deliverer.run``
sends them from a thread pool; every non-2xx answer schedules a redelivery of that event
after an exponential backoff (scaled down from Stripe's hours to seconds), until it is
acknowledged or ``give_up_after`` seconds have passed since its first try.
"""

from __future__ import annotations

import heapq
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

from orderpipe.stripe_api.standin.events import signed_delivery


@dataclass
class Job:
    event: dict[str, Any]
    copies: int = 1  # > 1: sent simultaneously on that many connections


def plan(events: Sequence[dict[str, Any]], total: int, rng: random.Random, burst: float = 0.15) -> list[Job]:
    """``total`` deliveries (>= len(events)) for these events, shuffled; about ``burst`` of the
    extra deliveries go out as simultaneous copies."""
    counts = Counter({e["id"]: 1 for e in events})
    by_id = {e["id"]: e for e in events}
    ids = list(by_id)
    for _ in range(max(0, total - len(events))):
        counts[rng.choice(ids)] += 1
    jobs: list[Job] = []
    for event_id, n in counts.items():
        while n > 0:
            copies = min(n, rng.randint(2, 5)) if n > 1 and rng.random() < burst * 3 else 1
            jobs.append(Job(by_id[event_id], copies))
            n -= copies
    rng.shuffle(jobs)
    return jobs


@dataclass
class Stats:
    deliveries: int = 0  # POSTs made, redeliveries included
    planned: int = 0
    redeliveries: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)  # 200 bodies' "status"
    acked: set[str] = field(default_factory=set)  # event ids answered 2xx at least once
    unacked: set[str] = field(default_factory=set)  # given up on
    first_503: float | None = None
    last_non_2xx: float | None = None


class Deliverer:
    def __init__(self, urls: Sequence[str], secret: str, *, threads: int = 12, timeout: float = 10.0,
                 backoff: float = 0.5, max_backoff: float = 8.0, give_up_after: float = 300.0,
                 seed: int = 7) -> None:
        self.urls = list(urls)
        self.secret = secret
        self.threads = threads
        self.backoff, self.max_backoff, self.give_up_after = backoff, max_backoff, give_up_after
        self.rng = random.Random(seed)
        self.stats = Stats()
        self._lock = threading.Lock()
        self._client = httpx.Client(timeout=timeout, limits=httpx.Limits(max_connections=threads * 6))
        self._retry: list[tuple[float, int, dict[str, Any], int, float]] = []  # (due, seq, event, n, first)
        self._seq = 0
        self._pending = 0
        self._idle = threading.Condition(self._lock)

    def close(self) -> None:
        self._client.close()

    # ---- one POST ---------------------------------------------------------------------------
    def _post(self, event: dict[str, Any]) -> int:
        body, headers = signed_delivery(event, self.secret)
        with self._lock:
            url = self.rng.choice(self.urls)
            self.stats.deliveries += 1
        try:
            r = self._client.post(url, content=body, headers=headers)
            status, answer = r.status_code, (r.json().get("status") if r.status_code == 200 else None)
        except httpx.TimeoutException:
            status, answer = -1, None
        except (httpx.HTTPError, ValueError):
            status, answer = -2, None
        with self._lock:
            key = {-1: "timeout", -2: "conn-error"}.get(status, str(status))
            self.stats.by_status[key] += 1
            if answer:
                self.stats.answers[str(answer)] += 1
            if 200 <= status < 300:
                self.stats.acked.add(event["id"])
            else:
                now = time.monotonic()
                self.stats.last_non_2xx = now
                if status == 503 and self.stats.first_503 is None:
                    self.stats.first_503 = now
        return status

    def _deliver(self, event: dict[str, Any], copies: int, attempt: int, first: float) -> None:
        try:
            if copies > 1:
                results: list[int] = []
                threads = [threading.Thread(target=lambda: results.append(self._post(event))) for _ in range(copies)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                ok = any(200 <= s < 300 for s in results)
            else:
                ok = 200 <= self._post(event) < 300
            with self._lock:
                if not ok:
                    if time.monotonic() - first > self.give_up_after:
                        self.stats.unacked.add(event["id"])
                    else:
                        delay = min(self.max_backoff, self.backoff * 2 ** attempt) * (0.5 + self.rng.random())
                        self._seq += 1
                        heapq.heappush(self._retry, (time.monotonic() + delay, self._seq, event, attempt + 1, first))
                        self._pending += 1
                        self.stats.redeliveries += 1
        finally:
            with self._lock:
                self._pending -= 1
                self._idle.notify_all()

    # ---- a whole plan -----------------------------------------------------------------------
    def run(self, jobs: Sequence[Job], *, pace: float = 0.0,
            between: Callable[[int], None] | None = None) -> Stats:
        """Send every job (``pace`` seconds apart, ``between(i)`` called before job i), then
        the redeliveries, until every event is acknowledged or given up on."""
        with ThreadPoolExecutor(self.threads) as pool:
            for i, job in enumerate(jobs):
                if between is not None:
                    between(i)
                with self._lock:
                    self._pending += 1
                    self.stats.planned += job.copies
                pool.submit(self._deliver, job.event, job.copies, 0, time.monotonic())
                self._release_due(pool)
                if pace:
                    time.sleep(pace)
            while True:
                self._release_due(pool)
                with self._lock:
                    if self._pending == 0:
                        break
                    self._idle.wait(0.1)
        return self.stats

    def _release_due(self, pool: ThreadPoolExecutor) -> None:
        now = time.monotonic()
        with self._lock:
            due = []
            while self._retry and self._retry[0][0] <= now:
                due.append(heapq.heappop(self._retry))
        for _, _, event, attempt, first in due:
            pool.submit(self._deliver, event, 1, attempt, first)
