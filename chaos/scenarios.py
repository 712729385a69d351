"""The scenarios: each drives the running stack (``World``), provokes its faults, waits for the
orders to settle and returns a ``Row`` of figures and the invariants it found violated."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from chaos.faults import Rates
from chaos.stripe_client import Deliverer, Job, Stats, plan
from chaos.world import World
from orderpipe.stripe_api.standin.events import order_event
from tests.conftest import REPO
from tests.standins.wsgi_thread import Fault
from tests.worker_stack import SECRET

FULFIL = ("checkout.session.completed", "payment_intent.succeeded")


@dataclass
class Row:
    scenario: str
    layout: str
    deliveries: int = 0
    orders: int = 0
    runs: int = 0
    deals: int = 0
    shipments: int = 0
    invoices: int = 0
    emails: int = 0
    duplicates: int = 0
    lost: int = 0
    needs_attention: int = 0
    recovery_s: float | None = None
    seconds: float = 0.0
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def fail(self, msg: str) -> None:
        self.violations.append(msg)


def _events(w: World, ids: list[str]) -> list[dict[str, Any]]:
    return [order_event(w.store, o, t) for o in ids for t in FULFIL]


def _deliver(w: World, events: list[dict[str, Any]], total: int, *, seed: int, pace: float = 0.0,
             between: Any = None, threads: int = 12) -> Stats:
    d = Deliverer(w.receivers, SECRET, seed=seed, threads=threads)
    try:
        return d.run(plan(events, total, random.Random(seed)), pace=pace, between=between)
    finally:
        d.close()


def _check_delivery(row: Row, stats: Stats, n_orders: int, *, allow_503: bool = False) -> None:
    row.deliveries += stats.deliveries
    if stats.unacked:
        row.lost += len(stats.unacked)
        row.fail(f"{len(stats.unacked)} events never acknowledged")
    if stats.answers["accepted"] > n_orders:
        row.fail(f"receiver accepted {stats.answers['accepted']} times for {n_orders} orders")
    bad = {k: v for k, v in stats.by_status.items() if k.startswith("5") and not (allow_503 and k == "503")}
    if bad:
        row.fail(f"unexpected receiver answers {bad}")
    row.notes.append("answers " + ", ".join(f"{k}:{v}" for k, v in sorted(stats.by_status.items()))
                     + " (" + ", ".join(f"{k} {v}" for k, v in sorted(stats.answers.items())) + ")")


def evaluate(w: World, row: Row, ids: list[str], *, allow_needs_attention: bool = False) -> None:
    """Count at the stand-ins and in orderpipe's database; every invariant that fails is a violation."""
    row.orders += len(ids)
    states = w.states(ids)
    c = w.counts(ids)
    for key in ("runs", "deals", "shipments", "invoices", "emails"):
        setattr(row, key, getattr(row, key) + sum(c[key].values()))
        extra = sum(max(0, n - 1) for n in c[key].values())
        if extra:
            row.duplicates += extra
            row.fail(f"{extra} duplicate {key}: " + ", ".join(o for o, n in c[key].items() if n > 1)[:300])
    for o in ids:
        state = states[o]
        if state == "completed":
            missing = [k for k in ("runs", "deals", "shipments", "invoices", "emails") if c[k][o] != 1]
            if missing:
                row.fail(f"{o} completed but {missing} != 1")
        elif state == "needs_attention" and allow_needs_attention:
            row.needs_attention += 1
            if not any(k.startswith(f"{o}:") and ":needs_attention:" in k for k in c["alerts_db"]):
                row.fail(f"{o} needs_attention without an alert")
        else:
            row.lost += 1
            row.fail(f"{o} ended {state!r} (steps {w.step_states([o])[o]})")
    # An alert that could not be recorded (database away) is still delivered: at least one may
    # reach Slack without a row; more than the rows (or one) is a person alerted twice.
    slack_extra = {o: n for o, n in c["slack"].items()
                   if n > max(1, sum(1 for k in c["alerts_db"] if k.startswith(f"{o}:")))}
    if slack_extra:
        texts = [t[:160] for t in w.slack.texts() if any(o in t for o in slack_extra)]
        row.fail(f"alerted more than once: {slack_extra}: {texts[:4]}")
    gapless, n = w.invoice_seqs_gapless()
    if not gapless:
        row.fail(f"invoice numbers not gapless ({n} invoices)")


def _settle(w: World, row: Row, ids: list[str], timeout: float, *, allow_na: bool = False,
            self_healing: bool = False) -> float:
    """Wait until every order is final. Orders that failed are then re-driven by
    `orderpipe reconcile` (what the scheduled reconcile flow does every 15 minutes), at most
    twice. With ``self_healing`` (an interrupted run must be finished by a worker on its own,
    contract "Running on several machines"), needing reconcile at all is a violation."""
    t0 = time.monotonic()
    final_ok = ("completed", "needs_attention") if allow_na else ("completed",)
    for attempt in range(3):
        done, _ = w.wait_final(ids, timeout, ok=(*final_ok, "failed", "cancelled"))
        states = w.states(ids)
        stuck = {o: s for o, s in states.items() if s not in final_ok}
        if not stuck or attempt == 2:
            break
        if self_healing and attempt == 0:
            row.fail(f"{len(stuck)} orders not finished {timeout:.0f} s after recovery without reconcile: "
                     + ", ".join(f"{o} {s}" for o, s in sorted(stuck.items()))[:400])
        out = reconcile(w)
        kinds = "; ".join(sorted(set(stuck.values())))
        row.notes.append(f"`orderpipe reconcile` re-drove {len(stuck)} orders ({kinds}): "
                         f"{' | '.join(out.splitlines()[-3:])[:200]}")
    return time.monotonic() - t0


def reconcile(w: World, since: str = "2h") -> str:
    p = subprocess.run([sys.executable, "-m", "orderpipe.cli", "reconcile", "--since", since], env=w.cli_env(),
                       cwd=REPO, capture_output=True, text=True, timeout=300)
    return (p.stdout + p.stderr).strip()


# ---- scenarios ------------------------------------------------------------------------------------

def delivery(w: World, orders: int, deliveries: int, seed: int) -> Row:
    row = Row("stripe-delivery", w.layout)
    t0 = time.monotonic()
    ids = w.new_orders(f"D{w.layout}", orders)
    stats = _deliver(w, _events(w, ids), deliveries, seed=seed)
    sent = time.monotonic()
    _check_delivery(row, stats, orders)
    _settle(w, row, ids, timeout=60 + orders * 3)
    row.recovery_s = round(time.monotonic() - sent, 1)
    row.notes.insert(0, f"{stats.planned} planned deliveries ({sum(1 for _ in stats.acked)} events), "
                        f"{stats.redeliveries} redeliveries; recovery = last delivery -> every order final")
    evaluate(w, row, ids)
    row.seconds = time.monotonic() - t0
    return row


def vendor_faults(w: World, orders: int, seed: int, slow_timeouts: bool) -> Row:
    row = Row("vendor-faults", w.layout)
    t0 = time.monotonic()
    rates = Rates(server_error=0.20, rate_limited=0.10, lost=0.05, retry_after=1, slow_timeouts=slow_timeouts)
    standins = (w.postnord, w.mailgun, w.zoho)
    before = {type(s).__name__: len(s.requests) for s in standins}
    for s in standins:
        s.rates = rates
    try:
        ids = w.new_orders(f"V{w.layout}", orders)
        stats = _deliver(w, _events(w, ids), 2 * orders, seed=seed)
        _check_delivery(row, stats, orders)
        _settle(w, row, ids, timeout=120 + orders * 4, allow_na=True)
    finally:
        for s in standins:
            s.rates = Rates()
    row.recovery_s = None
    drawn = {type(s).__name__.removeprefix("Chaos"): dict(s.fault_log.drawn) for s in standins}
    reqs = {type(s).__name__.removeprefix("Chaos"): len(s.requests) - before[type(s).__name__] for s in standins}
    row.notes.append(f"vendor requests {reqs}; faults drawn {drawn}; lost answers as "
                     + ("21 s stalls past the client timeout" if slow_timeouts else "dropped connections"))
    evaluate(w, row, ids, allow_needs_attention=True)
    row.seconds = time.monotonic() - t0
    return row


def never_delivered(w: World, orders: int) -> Row:
    row = Row("reconcile-undelivered", w.layout)
    t0 = time.monotonic()
    ids = w.new_orders(f"R{w.layout}", orders)
    for o in ids:  # Stripe has the events (GET /v1/events) but never delivers them
        for t in FULFIL:
            order_event(w.store, o, t, delivered=False)
    out = reconcile(w)
    found = sum(1 for o in ids if w.states([o])[o] != "missing")
    row.notes.append(f"`orderpipe reconcile` recorded {found}/{orders}: "
                     + " | ".join(line for line in out.splitlines() if "recorded" in line or "started" in line)[:240])
    t1 = time.monotonic()
    _settle(w, row, ids, timeout=60 + orders * 5)
    row.recovery_s = round(time.monotonic() - t1, 1)
    evaluate(w, row, ids)
    row.seconds = time.monotonic() - t0
    return row


def _fault_under_load(w: World, row: Row, ids: list[str], seed: int, outage: float, start_fault: Any,
                      end_fault: Any, *, allow_503: bool) -> float:
    """Deliver half the orders, start the fault once some runs are going, deliver the other
    half during the outage, end it; returns when it ended (monotonic)."""
    events = _events(w, ids)
    half = len(ids) // 2
    first, second = events[:2 * half], events[2 * half:]
    stats = _deliver(w, first, len(first), seed=seed)
    w.rw.wait(lambda: any(s in ("running", "completed") for s in w.states(ids[:half]).values()), 120,
              f"no run started: {w.states(ids[:half])}")
    start_fault()
    t_cut = time.monotonic()
    ended: dict[str, float] = {}

    def end_later() -> None:
        time.sleep(max(0.0, outage - (time.monotonic() - t_cut)))
        end_fault()
        ended["at"] = time.monotonic()

    timer = threading.Thread(target=end_later, daemon=True)
    timer.start()
    time.sleep(min(3.0, outage / 4))
    stats2 = _deliver(w, second, len(second) * 3, seed=seed + 1)  # Stripe redelivers until it is 2xx
    timer.join()
    for s in (stats, stats2):
        _check_delivery(row, s, len(ids), allow_503=allow_503)
    return ended["at"]


def prefect_down(w: World, orders: int, seed: int, outage: float) -> Row:
    row = Row(f"prefect-down-{outage:.0f}s", w.layout)
    t0 = time.monotonic()
    ids = w.new_orders(f"P{w.layout}", orders)
    ended = _fault_under_load(w, row, ids, seed, outage, w.prefect.stop, w.prefect.start, allow_503=False)
    _settle(w, row, ids, timeout=120 + orders, self_healing=True)
    row.recovery_s = round(time.monotonic() - ended, 1)
    row.notes.append("recovery = Prefect server back -> every order final")
    evaluate(w, row, ids)
    row.seconds = time.monotonic() - t0
    return row


def db_down(w: World, orders: int, seed: int, outage: float) -> Row:
    row = Row(f"db-down-{outage:.0f}s", w.layout)
    t0 = time.monotonic()
    ids = w.new_orders(f"B{w.layout}", orders)
    ended = _fault_under_load(w, row, ids, seed, outage, w.proxy.cut, w.proxy.restore, allow_503=True)
    _settle(w, row, ids, timeout=120 + orders, self_healing=True)
    row.recovery_s = round(time.monotonic() - ended, 1)
    row.notes.append("recovery = database reachable again -> every order final")
    evaluate(w, row, ids)
    row.seconds = time.monotonic() - t0
    return row


def kill_worker(w: World, orders: int, seed: int) -> Row:
    row = Row("kill-9-worker", w.layout)
    t0 = time.monotonic()
    ids = w.new_orders(f"K{w.layout}", orders)
    # every order's CRM deal lookup (a read) stalls, then 503: the runs are mid-flow when the
    # kill comes (holding a vendor *write* instead would leave its outcome unknown on purpose,
    # and the order rightly needs_attention: see vendor-faults)
    w.zoho.inject(*[Fault(status=503, body={"message": "held by chaos"}, delay=45, path_contains="/Deals/search")
                    for _ in range(orders)])
    before = len(w.zoho.requests)
    stats = _deliver(w, _events(w, ids), 2 * orders, seed=seed)
    _check_delivery(row, stats, orders)

    def in_flight() -> int:
        return sum(1 for r in w.zoho.requests[before:] if "/Deals/search" in r.path and r.status is None)

    want = orders if w.layout == "one" else max(1, orders // 2)
    w.rw.wait(lambda: in_flight() >= want, 180, f"runs never reached the CRM deal lookup: {w.states(ids)}")
    mid = in_flight()
    what, _ = w.kill_worker()
    row.notes.append(f"kill -9 of {what} with {mid} runs waiting in the CRM step")
    t_restart = time.monotonic()
    w.restart_killed()
    with w.zoho._lock:  # the held answers nobody waits for any more
        w.zoho._faults.clear()
    _settle(w, row, ids, timeout=120 + orders, self_healing=True, allow_na=True)
    row.recovery_s = round(time.monotonic() - t_restart, 1)
    row.notes.append("recovery = restart -> every order final; needs_attention = a vendor write cut by the kill")
    evaluate(w, row, ids, allow_needs_attention=True)
    row.seconds = time.monotonic() - t0
    return row


__all__ = ["Job", "Row", "db_down", "delivery", "evaluate", "kill_worker", "never_delivered", "prefect_down",
           "vendor_faults"]
