"""Starts the flow run of every pending order: the receiver only records, this starts.

One Prefect flow run per order: the order id is the idempotency key (unique per flow on
the server) and the run name. If Prefect is unreachable the order stays pending with a
backoff; nothing is lost. Every worker runs a dispatcher; on Postgres each claims its
orders with `FOR UPDATE SKIP LOCKED`, so two never start the same order at the same moment
(and if they did, the idempotency key would still give one run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import ExitStack, nullcontext
from typing import Any

from sqlalchemy import Engine

from orderpipe.alerting import alerts
from orderpipe.connectors.base import AlertSink
from orderpipe.db import session_scope
from orderpipe.errors import failure_kind
from orderpipe.orders import dispatch_rules, ledger
from orderpipe.orders.dispatch_rules import ALERT_AFTER, failure_reason
from orderpipe.orders.prefect_api import PrefectApi, PrefectClientApi
from orderpipe.tables import utcnow

DEPLOYMENT = "process-order/orderpipe"
REFUND_DEPLOYMENT = "process-refund/orderpipe"
log = logging.getLogger("orderpipe.dispatcher")


__all__ = ["ALERT_AFTER", "DEPLOYMENT", "REFUND_DEPLOYMENT", "Dispatcher"]
_reason = failure_reason


class Dispatcher:
    def __init__(self, engine: Engine, *, deployment: str = DEPLOYMENT, client: Any = None,
                 alert_sink: Callable[[], AlertSink] | None = None, prefect: PrefectApi | None = None) -> None:
        """`prefect`: the Prefect API (a fake in tests); by default Prefect's client: `client`,
        a SyncPrefectClient kept by the caller (the worker), or None to open one per dispatch
        round. `alert_sink`: builds the sink the "cannot start" alert goes to (without one it is
        recorded and reconciliation delivers it)."""
        self.engine = engine
        self.alert_sink = alert_sink
        self.deployment = deployment
        self.prefect: PrefectApi = prefect if prefect is not None else PrefectClientApi(client)

    def _create_run(self, prefect: PrefectApi, order_id: str) -> str:
        return prefect.create_run(self.deployment, parameters={"order_id": order_id}, idempotency_key=order_id,
                                  name=f"order-{order_id}", tags=["orderpipe"])

    def start(self, order_id: str) -> str | None:
        """Create (or find, by idempotency key) one order's flow run; returns its id."""
        started = self._dispatch(limit=1, only=order_id)
        return started[0][1] if started else None

    def dispatch_once(self, limit: int = 20) -> list[str]:
        """Start up to `limit` due orders, then due refunds; returns the ids started."""
        started = [order_id for order_id, _ in self._dispatch(limit=limit)]
        return started + self.dispatch_refunds(limit=limit)

    # ---- refunds: one run of process-refund per refund id (its idempotency key) ---------
    def dispatch_refunds(self, limit: int = 20, stripe: Any = None) -> list[str]:
        """List the refunds of charges named by `charge.refunded` (the receiver does no Stripe
        I/O), then start up to `limit` due refund runs; returns the refund ids started."""
        from orderpipe.orders import refund_ledger

        scans = refund_ledger.pending_scans(self.engine, limit)
        if scans:
            self._scan(scans, stripe)
        with ExitStack() as stack:
            if self.engine.dialect.name == "postgresql":
                s = stack.enter_context(session_scope(self.engine))
                refund_ids = refund_ledger.claim_for_dispatch(s, limit)
                sessions = lambda: nullcontext(s)  # noqa: E731
            else:
                refund_ids = refund_ledger.due_for_dispatch(self.engine, limit)
                sessions = lambda: session_scope(self.engine)  # noqa: E731
            if not refund_ids:
                return []
            prefect = stack.enter_context(self.prefect.connected())
            started: list[str] = []
            for refund_id in refund_ids:
                try:
                    run_id = prefect.create_run(REFUND_DEPLOYMENT, parameters={"refund_id": refund_id},
                                                idempotency_key=refund_id, name=f"refund-{refund_id}",
                                                tags=["orderpipe", "refund"])
                except Exception as exc:  # noqa: BLE001 - Prefect down or refusing: keep pending, back off
                    log.warning("refund %s not started yet (%s); will retry", refund_id, _reason(exc))
                    with sessions() as s2:
                        refund_ledger.mark_dispatch_failed(s2, refund_id, _reason(exc))
                    break
                with sessions() as s2:
                    refund_ledger.mark_dispatched(s2, refund_id, run_id)
                started.append(refund_id)
                log.info("refund %s -> flow run %s", refund_id, run_id)
            return started

    def _scan(self, order_ids: list[str], stripe: Any) -> None:
        from orderpipe.orders import refund_ledger

        if stripe is None:
            from orderpipe.bootstrap import process_services

            stripe = process_services().stripe
        for order_id in order_ids:
            try:
                for refund in stripe.list_refunds(payment_intent=order_id):
                    refund_ledger.record_refund(self.engine, refund["id"], order_id, refund.get("charge"),
                                                source=f"charge.refunded:{order_id}")
            except Exception as exc:  # noqa: BLE001 - Stripe away: the scan stays pending
                log.warning("refunds of %s not listed yet (%s); will retry", order_id, _reason(exc))
                refund_ledger.finish_scan(self.engine, order_id, error=_reason(exc))
                continue
            refund_ledger.finish_scan(self.engine, order_id)

    def _dispatch(self, *, limit: int, only: str | None = None) -> list[tuple[str, str]]:
        with ExitStack() as stack:
            if self.engine.dialect.name == "postgresql":
                # Row locks held while the runs are created: other dispatchers skip these orders.
                s = stack.enter_context(session_scope(self.engine))
                order_ids = [only] if only else ledger.claim_for_dispatch(s, limit)
                sessions = lambda: nullcontext(s)  # noqa: E731
            else:
                # SQLite: one writer for the whole file, so never hold it across an HTTP call; the
                # idempotency key keeps a concurrent start of the same order to one run.
                order_ids = [only] if only else ledger.due_for_dispatch(self.engine, limit)
                sessions = lambda: session_scope(self.engine)  # noqa: E731
            if not order_ids:
                return []
            return self._start_all(stack.enter_context(self.prefect.connected()), order_ids, sessions)

    def _start_all(self, prefect: PrefectApi, order_ids: list[str], sessions: Any) -> list[tuple[str, str]]:
        started: list[tuple[str, str]] = []
        for order_id in order_ids:
            try:
                run_id = self._create_run(prefect, order_id)
            except Exception as exc:  # noqa: BLE001 - Prefect down or refusing: keep pending, back off
                log.warning("order %s not started yet (%s); will retry", order_id, _reason(exc))
                with sessions() as s:
                    since = ledger.mark_dispatch_failed(s, order_id, _reason(exc))
                if dispatch_rules.should_alert(since, utcnow()):
                    self._alert_stuck(order_id, since, exc)
                break  # the next round retries the rest; don't hammer a server that is away
            with sessions() as s:
                ledger.mark_dispatched(s, order_id, run_id)
            started.append((order_id, run_id))
            log.info("order %s -> flow run %s", order_id, run_id)
        return started

    def _alert_stuck(self, order_id: str, since: Any, exc: BaseException) -> None:
        alert = dispatch_rules.stuck_alert(order_id, since=since, reason=_reason(exc), kind=failure_kind(exc),
                                           deployment=self.deployment, now=utcnow())
        try:
            if self.alert_sink is not None:
                alerts.raise_alert(self.engine, self.alert_sink(), alert)
            else:
                with session_scope(self.engine) as s:
                    alerts.record(s, alert)
        except Exception as err:  # noqa: BLE001 - the dispatcher must keep going; the order stays pending
            log.error("order %s: dispatch alert not recorded: %s", order_id, err)
