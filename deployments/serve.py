"""The runner process: deploys process-order and reconcile, executes their runs, and
dispatches pending orders from the ledger.

`serve(..., limit=N)` bounds concurrent flow-run processes (about 94 MiB each; `serve()`
without a limit spawns one per queued run). `query_seconds` is the poll interval: 0.25 s
gives about 1.2 s from run creation to flow start (shared/docs/prefect-notes.md §1).
For many machines use prefect.yaml with a process work pool and `prefect worker start`.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from prefect import serve
from prefect.deployments.runner import EntrypointType

from flows.process_order import process_order
from flows.reconcile import reconcile
from orderpipe.db import get_engine
from orderpipe.dispatcher import Dispatcher
from orderpipe.rate_limits import ensure_rate_limits
from orderpipe.settings import Settings, load_settings

log = logging.getLogger("orderpipe.runner")


def deployments(settings: Settings) -> list[object]:
    return [
        process_order.to_deployment(
            name="orderpipe", tags=["orderpipe"], entrypoint_type=EntrypointType.MODULE_PATH,
            description="Fulfil one paid Stripe order (one run per PaymentIntent).",
        ),
        reconcile.to_deployment(
            name="orderpipe", tags=["orderpipe"], entrypoint_type=EntrypointType.MODULE_PATH,
            interval=timedelta(minutes=settings.orderpipe_reconcile_minutes), parameters={"since_hours": 24.0},
            description="Catch missed webhooks, start pending orders, retry failed runs.",
        ),
    ]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = load_settings()
    ensure_rate_limits()
    stop = threading.Event()
    dispatcher = Dispatcher(get_engine(settings.db_url), settings.data_dir)
    thread = threading.Thread(target=dispatcher.run_forever, args=(stop,), name="dispatcher", daemon=True)
    thread.start()
    try:
        serve(*deployments(settings), limit=settings.orderpipe_run_limit,  # type: ignore[arg-type]
              query_seconds=settings.orderpipe_poll_seconds, pause_on_shutdown=False, print_starting_message=False)
    finally:
        stop.set()
        thread.join(timeout=5)


if __name__ == "__main__":
    main()
