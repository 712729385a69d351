"""`make bench-smoke`: N orders through the running stack; event->email latency and throughput.

Starts the Stripe stand-in and the embedded stack exactly as `orderpipe up` does (SQLite,
local connectors, a temporary data dir, free ports), posts one signed
`checkout.session.completed` per order as fast as the receiver takes them, and reads each
order's email timestamp (the `emails` row written when the outbox file is in place).
Prints p50/p95/max latency from the webhook POST to the email, orders/min over the burst,
and the receiver's answer latency. Numbers depend on ORDERPIPE_RUN_LIMIT and
ORDERPIPE_POLL_SECONDS (see README) and on the 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--orders", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--database-url", default=None,
                    help="orderpipe's database (postgresql+psycopg://...: the Prefect server then runs on "
                         "Postgres too, in <db>_prefect); default SQLite under a temporary data dir")
    args = ap.parse_args()

    from orderpipe.demo import DEMO_SECRET, _free_port
    from orderpipe.stripe_standin import DEFAULT_API_KEY, SAMPLE_ORDER_IDS, StandinServer, StandinStore, seed_store
    from orderpipe.stripe_standin.events import order_event, signed_delivery
    from orderpipe.stripe_standin.samples import clone_order

    store = StandinStore(api_key=DEFAULT_API_KEY)
    seed_store(store)
    checkout_samples = [o for o in SAMPLE_ORDER_IDS if store.session_for(o) is not None]
    ids = [clone_order(store, checkout_samples[i % len(checkout_samples)], f"pi_3Bench{i:013d}")
           for i in range(args.orders)]
    standin = StandinServer(store).start()
    data_dir = Path(tempfile.mkdtemp(prefix="orderpipe-bench-"))
    os.environ.update({
        "ORDERPIPE_DATA_DIR": str(data_dir), "STRIPE_API_BASE": standin.url, "STRIPE_API_KEY": DEFAULT_API_KEY,
        "STRIPE_WEBHOOK_SECRET": DEMO_SECRET, "ORDERPIPE_PORT": str(_free_port()),
        "PREFECT_SERVER_API_PORT": str(_free_port()), "ORDERPIPE_NO_UI": "1",
    })
    for var in ("DATABASE_URL", "PREFECT_API_URL"):
        os.environ.pop(var, None)
    if args.database_url:
        os.environ["DATABASE_URL"] = args.database_url

    from sqlalchemy import select
    from sqlmodel import Session

    from orderpipe.db import aware, get_engine
    from orderpipe.settings import load_settings
    from orderpipe.stack import Stack
    from orderpipe.tables import EmailSent, OrderRecord

    settings = load_settings()
    stack = Stack(settings)
    try:
        stack.start(quiet=True)
        url = f"http://{settings.orderpipe_host}:{settings.orderpipe_port}/webhooks/stripe"
        sent: dict[str, datetime] = {}
        answer_ms: list[float] = []
        with httpx.Client(timeout=30) as client:
            for order_id in ids:
                body, headers = signed_delivery(order_event(store, order_id, "checkout.session.completed"),
                                                DEMO_SECRET)
                t0 = time.perf_counter()
                sent[order_id] = datetime.now(UTC)
                r = client.post(url, content=body, headers=headers)
                answer_ms.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200 and r.json()["status"] == "accepted", r.text
        engine = get_engine(settings.db_url)
        deadline = time.monotonic() + args.timeout
        emails: dict[str, datetime] = {}
        failed: list[str] = []
        while time.monotonic() < deadline and len(emails) + len(failed) < len(ids):
            with Session(engine) as s:
                emails = {r.order_id: aware(r.created_at) for r in s.scalars(select(EmailSent)).all()}  # type: ignore[misc]
                failed = list(s.scalars(select(OrderRecord.order_id).where(OrderRecord.state == "failed")).all())
            time.sleep(0.5)
    finally:
        stack.stop()
        standin.stop()

    lat = [(emails[o] - sent[o]).total_seconds() for o in ids if o in emails]
    first, last = min(sent.values()), max(emails.values()) if emails else datetime.now(UTC)
    span = (last - first).total_seconds()
    print(f"orders: {len(ids)} sent, {len(lat)} emailed, {len(failed)} failed "
          f"(run limit {settings.orderpipe_run_limit}, poll {settings.orderpipe_poll_seconds} s)")
    print(f"receiver answer: p50 {statistics.median(answer_ms):.1f} ms, p95 {pct(answer_ms, 95):.1f} ms")
    if lat:
        print(f"event->email latency: p50 {statistics.median(lat):.2f} s, p95 {pct(lat, 95):.2f} s, "
              f"min {min(lat):.2f} s, max {max(lat):.2f} s")
        print(f"throughput: {len(lat) / span * 60:.1f} orders/min ({len(lat)} orders in {span:.1f} s)")
    print(f"data dir: {data_dir}")
    return 0 if len(lat) == len(ids) else 1


if __name__ == "__main__":
    raise SystemExit(main())
