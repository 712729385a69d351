"""The `orderpipe` command: up | demo | worker | receiver | status | reconcile | replay | check |
resolve | purge | forget."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from datetime import timedelta
from typing import Any

from orderpipe.settings import Settings, SettingsError, load_settings

EXIT_UNKNOWN_ORDER = 2
EXIT_REFUSED = 2  # contract: `replay` of an order whose run is live


def _prefect_env(settings: Settings) -> None:
    """Point this process's Prefect client at the stack's server (before prefect is imported)."""
    from orderpipe.prefect_env import base_env

    for key, value in base_env(settings).items():
        os.environ.setdefault(key, value)


def parse_duration(text: str) -> timedelta:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 30m, 24h or 7d")
    value, unit = float(m.group(1)), m.group(2) or "h"
    return timedelta(seconds=value * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit])


def _status_json(settings: Settings, engine: Any, row: Any) -> dict[str, Any]:
    """The contract's `status --json` object for one order row."""
    from orderpipe.orders import ledger
    from orderpipe.orders.refund_ledger import payment_summary
    from orderpipe.prefect_env import ui_url

    return {
        "order_id": row.order_id,
        "state": row.state,
        **payment_summary(engine, row.order_id, row.amount_total),
        "flow_run_id": row.flow_run_id,
        "ui_url": f"{ui_url(settings)}/runs/flow-run/{row.flow_run_id}" if row.flow_run_id else None,
        "steps": ledger.steps_of(engine, row.order_id),
        "customer_email": row.customer_email,
        "tracking_number": row.tracking_number,
        "invoice_number": row.invoice_number,
        "currency": row.currency,
        "amount_total": row.amount_total,
    }


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from orderpipe.db import get_engine, migrate
    from orderpipe.orders import ledger

    migrate(settings.db_url)
    engine = get_engine(settings.db_url)
    if args.order_id:
        row = ledger.get_order(engine, args.order_id)
        if row is None:
            if args.json:
                print(json.dumps({"error": f"unknown order {args.order_id}"}))
            else:
                print(f"unknown order {args.order_id}", file=sys.stderr)
            return EXIT_UNKNOWN_ORDER
        status = _status_json(settings, engine, row)
        if args.json:
            print(json.dumps(status))
        else:
            for key, value in status.items():
                if key == "steps":
                    print("steps:          " + ", ".join(f"{k}={v}" for k, v in value.items()))
                elif key == "credit_notes":
                    print(f"{key + ':':<16}" + (", ".join(f"{n['number']} ({n['amount']}, {n['refund_id']})"
                                                          for n in value) or "-"))
                else:
                    print(f"{key + ':':<16}{value if value is not None else '-'}")
        return 0
    rows = ledger.recent_orders(engine, limit=args.limit)
    if args.json:
        print(json.dumps([_status_json(settings, engine, r) for r in rows]))
        return 0
    from orderpipe.orders.refund_ledger import payment_summary

    print(f"{'order':<32} {'state':<15} {'amount':>12} {'payment':<18} {'refunded':>8} {'tracking':<16} "
          f"{'invoice':<14} {'credit notes':<16} received")
    for r in rows:
        amount = f"{r.amount_total} {r.currency}" if r.amount_total is not None else "-"
        pay = payment_summary(engine, r.order_id, r.amount_total)
        notes = ",".join(n["number"] for n in pay["credit_notes"]) or "-"
        print(f"{r.order_id:<32} {r.state:<15} {amount:>12} {pay['payment_status']:<18} {pay['refunded_amount']:>8} "
              f"{r.tracking_number or '-':<16} {r.invoice_number or '-':<14} {notes:<16} "
              f"{r.created_at:%Y-%m-%d %H:%M:%S}")
    return 0


def cmd_reconcile(settings: Settings, args: argparse.Namespace) -> int:
    _prefect_env(settings)
    from orderpipe.bootstrap import build_services
    from orderpipe.db import migrate
    from orderpipe.orders.reconciliation import reconcile_now

    migrate(settings.db_url)
    report = reconcile_now(build_services(settings), since=args.since)
    for line in report.lines():
        print(line)
    return 1 if report.problems else 0


def cmd_replay(settings: Settings, args: argparse.Namespace) -> int:
    _prefect_env(settings)
    from orderpipe.db import get_engine, migrate
    from orderpipe.orders import ledger
    from orderpipe.orders.dispatcher import Dispatcher
    from orderpipe.orders.prefect_api import PrefectClientApi
    from orderpipe.states import OrderState

    migrate(settings.db_url)
    engine = get_engine(settings.db_url)
    row = ledger.get_order(engine, args.order_id)
    if row is None:
        print(f"unknown order {args.order_id}", file=sys.stderr)
        return EXIT_UNKNOWN_ORDER
    if row.flow_run_id:
        live = _live_state(row.flow_run_id)
        if live:
            print(f"orderpipe replay: refused: order {args.order_id} has a live run ({row.flow_run_id} is {live}); "
                  "replaying now would start a second process beside it. Wait until it ends (orderpipe status "
                  f"{args.order_id}), or cancel it in the Prefect UI, then replay.", file=sys.stderr)
            return EXIT_REFUSED
        prefect = PrefectClientApi()
        retried = prefect.retry_run(row.flow_run_id, "replay requested from the CLI", force=True)
        accepted, run_count = retried.accepted, retried.run_count
        if not accepted:
            print(f"Prefect refused to retry run {row.flow_run_id}", file=sys.stderr)
            return 1
        ledger.set_order_state(engine, args.order_id, OrderState.RUNNING)
        print(f"order {args.order_id}: run {row.flow_run_id} scheduled again (attempt {run_count + 1}); "
              "completed steps will be skipped")
    else:
        run_id = Dispatcher(engine).start(args.order_id)
        if run_id is None:
            print(f"order {args.order_id}: could not start a run (Prefect unreachable?)", file=sys.stderr)
            return 1
        print(f"order {args.order_id}: run {run_id} started")
    if args.no_wait:
        return 0
    return _wait_for_order(settings, args.order_id, timeout=args.timeout)


def _live_state(flow_run_id: str) -> str | None:
    """The run's state name while it is not final (Scheduled, Pending, Running, Paused,
    Cancelling...), else None."""
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
    if run.state is None or run.state.is_final():
        return None
    return run.state.name


def _wait_for_order(settings: Settings, order_id: str, timeout: float) -> int:
    from prefect.client.orchestration import get_client

    from orderpipe.db import get_engine
    from orderpipe.orders import ledger

    engine = get_engine(settings.db_url)
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            row = ledger.get_order(engine, order_id)
            assert row is not None
            if row.flow_run_id:
                run = client.read_flow_run(row.flow_run_id)
                if run.state is not None and run.state.is_final():
                    steps = ledger.steps_of(engine, order_id)
                    print(f"order {order_id}: run {run.state.name}; " + ", ".join(f"{k}={v}" for k, v in steps.items()))
                    return 0 if run.state.is_completed() else 1
            time.sleep(0.5)
    print(f"order {order_id}: still running after {timeout:.0f} s", file=sys.stderr)
    return 1


def cmd_resolve(settings: Settings, args: argparse.Namespace) -> int:
    """A person checked the vendor: nothing was done; the step may be done again by a replay."""
    from orderpipe import vendor_attempts
    from orderpipe.db import get_engine, migrate
    from orderpipe.orders import ledger

    migrate(settings.db_url)
    engine = get_engine(settings.db_url)
    if ledger.get_order(engine, args.order_id) is None:
        print(f"unknown order {args.order_id}", file=sys.stderr)
        return EXIT_UNKNOWN_ORDER
    found = vendor_attempts.resolve(engine, args.order_id, args.step)
    if found is None:
        print(f"order {args.order_id}: step {args.step} has no write with an unknown outcome", file=sys.stderr)
        return 1
    print(f"order {args.order_id}: the {found.vendor} write of step {args.step} (reference {found.reference}, "
          f"started {found.started_at:%Y-%m-%d %H:%M:%S} UTC) is marked not done; "
          f"`orderpipe replay {args.order_id}` does it again")
    return 0


def _retention_report(lines: list[str]) -> int:
    for line in lines:
        print(line)
    return 0


def cmd_purge(settings: Settings, args: argparse.Namespace) -> int:
    from orderpipe import retention
    from orderpipe.db import get_engine, migrate

    migrate(settings.db_url)
    return _retention_report(retention.purge(settings, get_engine(settings.db_url), args.older_than).lines())


def cmd_forget(settings: Settings, args: argparse.Namespace) -> int:
    from orderpipe import retention
    from orderpipe.db import get_engine, migrate

    migrate(settings.db_url)
    return _retention_report(retention.forget(settings, get_engine(settings.db_url), args.email).lines())


def cmd_check(settings: Settings, _args: argparse.Namespace) -> int:
    from orderpipe.bootstrap import build_services
    from orderpipe.db import migrate
    from orderpipe.errors import StepError

    migrate(settings.db_url)
    svc = build_services(settings)
    worst = 0
    for role, connector in svc.connectors().items():
        name = getattr(connector, "name", type(connector).__name__)
        try:
            connector.check()  # type: ignore[attr-defined]
            print(f"{role:<16} {name:<10} ok")
        except (StepError, OSError) as exc:
            print(f"{role:<16} {name:<10} failed: {exc}")
            worst = 1
        except Exception as exc:  # noqa: BLE001 - report every connector, whatever it raised
            print(f"{role:<16} {name:<10} failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            worst = 1
    return worst


def cmd_up(settings: Settings, _args: argparse.Namespace) -> int:
    from orderpipe.stack import run_up

    settings.require_webhook_secret()
    settings.require_stripe_key()
    return run_up(settings)


#: glibc's malloc arenas for the long-lived worker: with its default (8 per core) the worker's
#: RSS grew about 3 MiB per 100 orders while its Python heap stayed flat; with 2 it levels off
#: (`make bench-soak`, README "Speed"). Read by glibc at start-up, so the worker re-executes
#: itself once with it set (an operator's own value is kept).
MALLOC_ARENAS = "2"


def cmd_worker(settings: Settings, _args: argparse.Namespace) -> int:
    if "MALLOC_ARENA_MAX" not in os.environ and sys.platform.startswith("linux"):
        os.environ["MALLOC_ARENA_MAX"] = MALLOC_ARENAS
        sys.stdout.flush()
        os.execv(sys.executable, [sys.executable, "-m", "orderpipe.cli", *sys.argv[1:]])
    _prefect_env(settings)
    settings.require_stripe_key()
    import logging

    from deployments.worker import Worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per Prefect request otherwise
    return Worker(settings).run()


def receiver_argv(settings: Settings) -> list[str]:
    """gunicorn serving the receiver on ORDERPIPE_HOST:ORDERPIPE_PORT."""
    return [sys.executable, "-m", "gunicorn", "--bind", f"{settings.orderpipe_host}:{settings.orderpipe_port}",
            "--workers", str(settings.orderpipe_receiver_workers), "--threads", "4", "--worker-class", "gthread",
            "--timeout", "60", "--graceful-timeout", "10", "--access-logfile", "-", "webhook.wsgi:application()"]


def cmd_receiver(settings: Settings, _args: argparse.Namespace) -> int:
    _prefect_env(settings)
    settings.require_webhook_secret()
    from orderpipe.db import migrate

    migrate(settings.db_url)
    argv = receiver_argv(settings)
    os.execv(argv[0], argv)  # gunicorn takes over this process: signals reach it directly


def cmd_demo(_settings: Settings, args: argparse.Namespace) -> int:
    from orderpipe.demo import run_demo

    return run_demo(timeout=args.timeout)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="orderpipe", description="Paid Stripe orders in, fulfilled orders out.")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="run the stack in the foreground until Ctrl-C").set_defaults(func=cmd_up)
    d = sub.add_parser("demo", help="run the sample orders through the embedded stack")
    d.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the orders (default 300)")
    d.set_defaults(func=cmd_demo)
    s = sub.add_parser("status", help="one order, or the most recent orders")
    s.add_argument("order_id", nargs="?")
    s.add_argument("--json", action="store_true")
    s.add_argument("--limit", type=int, default=20)
    s.set_defaults(func=cmd_status)
    r = sub.add_parser("reconcile", help="run reconciliation now and print what it did")
    r.add_argument("--since", type=parse_duration, default=timedelta(hours=24), help="window, e.g. 24h (default)")
    r.set_defaults(func=cmd_reconcile)
    rp = sub.add_parser("replay", help="re-drive an order; completed steps are skipped")
    rp.add_argument("order_id")
    rp.add_argument("--no-wait", action="store_true", help="return once the run is scheduled")
    rp.add_argument("--timeout", type=float, default=180.0)
    rp.set_defaults(func=cmd_replay)
    sub.add_parser("worker", help="execute flow runs of the deployments and dispatch pending orders").set_defaults(
        func=cmd_worker)
    sub.add_parser("receiver", help="run the webhook receiver alone (gunicorn)").set_defaults(func=cmd_receiver)
    c = sub.add_parser("check", help="verify the configured connectors' credentials and reachability")
    c.set_defaults(func=cmd_check)
    rs = sub.add_parser("resolve", help="after checking the vendor: a write with an unknown outcome was not done")
    rs.add_argument("order_id")
    rs.add_argument("step", choices=["shipment", "email"])
    rs.set_defaults(func=cmd_resolve)
    pg = sub.add_parser("purge", help="delete personal data older than a cutoff (invoices are kept 6 years)")
    pg.add_argument("--older-than", type=parse_duration, required=True, help="e.g. 90d")
    pg.set_defaults(func=cmd_purge)
    fg = sub.add_parser("forget", help="erase one customer's personal data; prints what was kept and why")
    fg.add_argument("email")
    fg.set_defaults(func=cmd_forget)
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(connectors=args.command != "receiver")  # the receiver builds no connector
        code = args.func(settings, args)
    except SettingsError as exc:
        print(f"orderpipe {args.command}: {exc}", file=sys.stderr)
        code = 2 if args.command != "status" else 1
    except KeyboardInterrupt:
        code = 130
    sys.exit(code)


if __name__ == "__main__":
    main()
