"""`orderpipe demo` / `make demo`: the sample orders from signed webhook to fulfilled order.

Starts the Stripe stand-in (seeded), then the embedded stack exactly as `orderpipe up`
would (Prefect server on SQLite under the data dir, runner, receiver), posts each sample
order's events signed with the stripe SDK's helper, waits for every order's flow run,
prints a summary, and stops everything it started.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from pathlib import Path

import httpx

from orderpipe.states import OrderState, Step, StepState

DEMO_SECRET = "whsec_orderpipe_demo_not_secret"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pick(port: int) -> int:
    return port if _port_free(port) else _free_port()


def run_demo(timeout: float = 300.0) -> int:
    from orderpipe.settings import SettingsError, load_settings
    from orderpipe.stripe_api.standin import DEFAULT_API_KEY, SAMPLE_ORDER_IDS, StandinServer, StandinStore, seed_store

    base = load_settings()
    demo_dir = base.data_dir / "demo"
    if demo_dir.exists():  # a demo starts from nothing; it only ever writes below <data dir>/demo
        shutil.rmtree(demo_dir)
    demo_dir.mkdir(parents=True)

    store = StandinStore(api_key=DEFAULT_API_KEY)
    seed_store(store)
    standin = StandinServer(store).start()
    receiver_port = _pick(base.orderpipe_port)
    prefect_port = _pick(base.prefect_server_api_port)
    os.environ.update({
        "ORDERPIPE_DATA_DIR": str(demo_dir),
        "STRIPE_API_BASE": standin.url,
        "STRIPE_API_KEY": DEFAULT_API_KEY,
        "STRIPE_WEBHOOK_SECRET": DEMO_SECRET,
        "ORDERPIPE_PORT": str(receiver_port),
        "PREFECT_SERVER_API_PORT": str(prefect_port),
    })
    for var in ("DATABASE_URL", "PREFECT_API_URL"):
        os.environ.pop(var, None)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"orderpipe demo: {exc}", file=sys.stderr)
        standin.stop()
        return 2

    from orderpipe.stack import Stack, StartupError

    print(f"orderpipe demo: data in {demo_dir}", flush=True)
    print(f"stripe stand-in {standin.url}  ({len(SAMPLE_ORDER_IDS)} sample paid orders)", flush=True)
    stack = Stack(settings)
    started = time.monotonic()
    try:
        stack.start()
        return _drive(settings, store, list(SAMPLE_ORDER_IDS), timeout, started)
    except StartupError as exc:
        print(f"orderpipe demo: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        stack.stop()
        standin.stop()
        print("demo stack stopped", flush=True)


def _drive(settings: object, store: object, order_ids: list[str], timeout: float, started: float) -> int:
    from orderpipe.db import get_engine
    from orderpipe.orders import ledger
    from orderpipe.prefect_env import ui_url
    from orderpipe.progress import OrderProgress
    from orderpipe.states import FINAL_ORDER_STATES, STEPS
    from orderpipe.stripe_api.standin.events import fulfilment_events, signed_delivery

    s = settings  # Settings
    url = f"http://{s.orderpipe_host}:{s.orderpipe_port}/webhooks/stripe"  # type: ignore[attr-defined]
    sent_at: dict[str, float] = {}
    with httpx.Client(timeout=10) as client:
        for order_id in order_ids:
            answers = []
            for event in fulfilment_events(store, order_id, delivered=True):  # type: ignore[arg-type]
                body, headers = signed_delivery(event, DEMO_SECRET)
                r = client.post(url, content=body, headers=headers)
                answers.append(f"{event['type']} -> {r.status_code} {r.json().get('status', r.text)}")
            sent_at[order_id] = time.monotonic()
            print(f"sent {order_id}: " + "; ".join(answers), flush=True)

    engine = get_engine(s.db_url)  # type: ignore[attr-defined]
    pending = set(order_ids)
    deadline = time.monotonic() + timeout
    with OrderProgress(order_ids, len(STEPS)) as progress:
        while pending and time.monotonic() < deadline:
            for order_id in order_ids:
                if order_id not in pending:
                    continue
                row = ledger.get_order(engine, order_id)
                if row is not None and row.state in FINAL_ORDER_STATES:
                    pending.discard(order_id)
                    progress.finish(order_id, row.state, time.monotonic() - sent_at[order_id])
                elif row is not None:
                    progress.update(order_id, *_where(ledger.steps_of(engine, order_id), row.state))
            time.sleep(0.25)

    print()
    print(f"{'order':<30} {'state':<10} {'country':<7} {'amount':>14} {'tracking':<15} {'invoice':<12} lang")
    ok = True
    for order_id in order_ids:
        row = ledger.get_order(engine, order_id)
        assert row is not None
        email = _email_language(engine, order_id)
        amount = f"{row.amount_total} {row.currency}" if row.amount_total is not None else "-"
        print(f"{order_id:<30} {row.state:<10} {row.country or '-':<7} {amount:>14} "
              f"{row.tracking_number or '-':<15} {row.invoice_number or '-':<12} {email or '-'}")
        if row.state != OrderState.COMPLETED:
            ok = False
            if row.last_error:
                print(f"    error: {row.last_error}")
    data = Path(s.data_dir)  # type: ignore[attr-defined]
    print()
    print(f"labels:   {data / 'labels'}")
    print(f"invoices: {data / 'invoices'}")
    print(f"outbox:   {data / 'outbox'}")
    print(f"Prefect UI: {ui_url(s)}  (flow runs named order-<pi id>; the UI stops with the demo)")  # type: ignore[arg-type]
    print(f"{len(order_ids) - len(pending)}/{len(order_ids)} orders finished in "
          f"{time.monotonic() - started:.1f} s; " + ("all completed" if ok else "NOT all completed"), flush=True)
    return 0 if ok and not pending else 1


def _where(steps: dict[Step, str], order_state: str) -> tuple[int, str]:
    """(steps completed, what the order is at) for its progress bar."""
    done = sum(1 for st in steps.values() if st == StepState.COMPLETED)
    running = [str(step) for step, st in steps.items() if st == StepState.RUNNING]
    failed = [str(step) for step, st in steps.items() if st == StepState.FAILED]
    if running:
        return done, ", ".join(running) + " running" + (f" ({', '.join(failed)} failed, retrying)" if failed else "")
    if failed:
        return done, ", ".join(failed) + " failed, retrying"
    return done, "waiting for a worker" if order_state == OrderState.RECEIVED else str(order_state)


def _email_language(engine: object, order_id: str) -> str | None:
    from sqlmodel import Session

    from orderpipe.tables import EmailSent

    with Session(engine) as session:  # type: ignore[arg-type]
        row = session.get(EmailSent, order_id)
        return row.language if row else None
