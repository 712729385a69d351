"""process-order: one flow run per order, the order's audit trail in the Prefect UI.

fetch_order -> crm, production_log, shipment, invoice (concurrently) -> email.
CRM and production log are non-critical: when they fail after their retries, shipment,
invoice and email still happen, the run ends Failed with one ops alert, and a retry of the
run re-runs only what failed (the rest hits the per-order cache).
"""

from __future__ import annotations

import hashlib
import logging
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.context import get_run_context
from prefect.futures import PrefectFuture

from orderpipe import ledger
from orderpipe.artifact import artifact_key, order_markdown
from orderpipe.bootstrap import process_services
from orderpipe.connectors.base import Alert
from orderpipe.connectors.status_callback import callback_payload
from orderpipe.refund_ledger import payment_summary
from tasks.crm import crm
from tasks.email import email
from tasks.fetch_order import fetch_order
from tasks.invoice import invoice
from tasks.notify import ops_alert, status_callback
from tasks.production_log import production_log, production_log_status
from tasks.shipment import shipment


class OrderNotFulfilled(RuntimeError):
    """Raised at the end of a run in which a step failed (after the others were done)."""


def _outcome(future: PrefectFuture[Any]) -> tuple[Any, str | None]:
    """(result, None) or (None, error message) for a finished task future."""
    future.wait()
    state = future.state
    if state.is_completed():
        return future.result(), None
    err = state.result(raise_on_failure=False)
    return None, (str(err) if isinstance(err, BaseException) else state.message) or state.name


def _alert(order_id: str, step: str, error: str, kind: str = "step_failed") -> Alert:
    digest = hashlib.sha1(error.encode()).hexdigest()[:12]
    return Alert(order_id=order_id, step=step, kind=kind, dedupe_key=f"{kind}:{order_id}:{step}:{digest}",
                 message=f"order {order_id}: step {step} failed: {error}", occurred_at=datetime.now(UTC))


def _tag_run(country: str | None, currency: str) -> None:
    ctx = get_run_context()
    run = ctx.flow_run  # type: ignore[union-attr]
    tags = sorted(set(run.tags) | {f"country:{country or 'unknown'}", f"currency:{currency}"})
    try:
        client = getattr(ctx, "client", None)
        if isinstance(client, SyncPrefectClient):  # the engine's own client: no new connection
            client.update_flow_run(run.id, tags=tags)
        else:
            with get_client(sync_client=True) as fresh:
                fresh.update_flow_run(run.id, tags=tags)
    except Exception as exc:  # noqa: BLE001 - tags help people search the UI; never fail an order for them
        get_run_logger().warning("could not tag the run with %s: %s", tags, exc)


def on_crashed(flow: Any, flow_run: Any, state: Any) -> None:
    """The engine saw its own run crash (e.g. a termination signal): note why in the ledger.

    No alert here: the worker re-drives the run (deployments/recovery.py) and alerts once
    if it cannot be finished."""
    order_id = (flow_run.parameters or {}).get("order_id")
    if not order_id:
        return
    try:
        ledger.set_order_fields(process_services().engine, order_id,
                                last_error=f"run {flow_run.name} crashed: {state.message or state.name}")
    except Exception as exc:  # noqa: BLE001 - a hook must not raise; the worker sees the crash anyway
        logging.getLogger("orderpipe.flow").error("crash of %s not recorded: %s", order_id, exc)


# validate_parameters=False: the one parameter is a string the dispatcher wrote; Prefect's
# validation builds a new Pydantic model for it in every run (checked below instead).
@flow(name="process-order", flow_run_name="order-{order_id}", persist_result=True, on_crashed=[on_crashed],
      validate_parameters=False)
def process_order(order_id: str) -> dict[str, Any]:
    if not isinstance(order_id, str) or not order_id:
        raise TypeError(f"process-order takes the order id as a non-empty string, not {order_id!r}")
    logger = get_run_logger()
    svc = process_services()
    run = get_run_context().flow_run  # type: ignore[union-attr]
    ledger.set_order_state(svc.engine, order_id, "running", flow_run_id=str(run.id))

    order_future = fetch_order.submit(order_id)
    order, err = _outcome(order_future)
    if order is None:
        ops_alert(_alert(order_id, "fetch_order", err or "failed"))
        ledger.set_order_state(svc.engine, order_id, "failed", last_error=f"fetch_order: {err}")
        _callback(order_id, "failed", failed_step="fetch_order")
        raise OrderNotFulfilled(f"order {order_id}: fetch_order failed: {err}")

    _tag_run(order.country, order.currency)
    ledger.set_order_fields(svc.engine, order_id, customer_email=order.customer_email, country=order.country,
                            currency=order.currency, amount_total=order.amount_total)
    if order.fully_refunded or order.billing_invoice:
        return _cancelled(order)

    futures = {
        "crm": crm.submit(order),
        "production_log": production_log.submit(order),
        "shipment": shipment.submit(order),
        "invoice": invoice.submit(order),
    }
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for step, fut in futures.items():
        results[step], e = _outcome(fut)
        if e is not None:
            errors[step] = e
    if "shipment" not in errors and "invoice" not in errors:
        results["email"], e = _outcome(email.submit(order, results["shipment"], results["invoice"]))
        if e is not None:
            errors["email"] = e
    else:
        results["email"] = None

    shipped, invoiced = results.get("shipment"), results.get("invoice")
    ledger.set_order_fields(
        svc.engine, order_id,
        tracking_number=shipped.tracking_number if shipped else None,
        invoice_number=invoiced.invoice_number if invoiced else None,
    )
    steps = ledger.steps_of(svc.engine, order_id)
    done = [s for s, st in steps.items() if st == "completed"]
    status = "completed: " + ", ".join(done) + ("; failed: " + ", ".join(errors) if errors else "")
    if results.get("production_log") is not None:
        _, e = _outcome(production_log_status.submit(order_id, status))
        if e is not None:
            logger.warning("production log status not updated: %s", e)

    create_markdown_artifact(
        key=artifact_key(order_id),
        markdown=order_markdown(order, steps=steps, crm=results.get("crm"), shipment=shipped, invoice=invoiced,
                                email=results.get("email"), errors=errors,
                                payment=payment_summary(svc.engine, order_id, order.amount_total)),
        description=f"Order {order_id}",
    )
    for step, error in errors.items():
        ops_alert(_alert(order_id, step, error))
    state = "failed" if errors else "completed"
    ledger.set_order_state(svc.engine, order_id, state,
                           last_error="; ".join(f"{k}: {v}" for k, v in errors.items()) or None)
    failed_step = next(iter(errors), None)
    _callback(order_id, "failed" if errors else "fulfilled", tracking=shipped, invoice=invoiced,
              failed_step=failed_step)
    if errors:
        raise OrderNotFulfilled(f"order {order_id}: " + "; ".join(f"{k} failed: {v}" for k, v in errors.items()))
    logger.info("order %s fulfilled: tracking %s, invoice %s", order_id, shipped.tracking_number,
                invoiced.invoice_number)
    return {"order_id": order_id, "tracking_number": shipped.tracking_number,
            "invoice_number": invoiced.invoice_number, "steps": steps}


def _cancelled(order: Any) -> dict[str, Any]:
    """Refunded in full before fulfilment (or a Billing invoice's payment): nothing is shipped,
    invoiced or emailed; the refund's own run credits an invoice if one exists."""
    svc = process_services()
    why = (f"paid through Stripe invoice {order.billing_invoice} (Billing): not a shop order"
           if order.billing_invoice else
           f"refunded in full ({order.amount_refunded} of {order.amount_total}) before fulfilment")
    ledger.set_order_state(svc.engine, order.order_id, "cancelled", last_error=why)
    steps = ledger.steps_of(svc.engine, order.order_id)
    create_markdown_artifact(
        key=artifact_key(order.order_id),
        markdown=order_markdown(order, steps=steps, crm=None, shipment=None, invoice=None, email=None, errors={},
                                payment=payment_summary(svc.engine, order.order_id, order.amount_total))
        + f"\n**Cancelled:** {why}; nothing shipped, invoiced or emailed.\n",
        description=f"Order {order.order_id}",
    )
    get_run_logger().info("order %s cancelled: %s", order.order_id, why)
    return {"order_id": order.order_id, "state": "cancelled", "reason": why, "steps": steps}


def _callback(order_id: str, status: str, *, tracking: Any = None, invoice: Any = None,
              failed_step: str | None = None) -> None:
    if process_services().status_callback is None:
        return
    payload = callback_payload(order_id, status, tracking_number=tracking.tracking_number if tracking else None,
                               invoice_number=invoice.invoice_number if invoice else None, failed_step=failed_step)
    status_callback.submit(payload).wait()
