"""process-order: one flow run per order, the order's audit trail in the Prefect UI.

fetch_order -> crm, production_log, shipment, invoice (concurrently) -> email.
CRM and production log are non-critical: when they fail after their retries, shipment,
invoice and email still happen, the run ends Failed with one ops alert, and a retry of the
run re-runs only what failed (the rest hits the per-order cache).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.client.orchestration import SyncPrefectClient, get_client
from prefect.context import get_run_context
from prefect.futures import PrefectFuture

from orderpipe import audit
from orderpipe.alerting import alerts
from orderpipe.artifact import StepTiming, artifact_key, file_link, order_markdown, steps_table, steps_table_key
from orderpipe.bootstrap import process_services
from orderpipe.connectors.base import Alert
from orderpipe.connectors.status_callback import callback_payload
from orderpipe.orders import ledger, outcome
from orderpipe.orders.refund_ledger import payment_summary
from orderpipe.states import OrderState, Step
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


def _failure(future: PrefectFuture[Any]) -> BaseException | str | None:
    """The exception a failed task future ended with (or its state message)."""
    err = future.state.result(raise_on_failure=False)
    return err if isinstance(err, BaseException) else future.state.message


def _alert(order_id: str, step: str, error: str, kind: str = "step_failed",
           failure: BaseException | str | None = None) -> Alert:
    """``outcome.step_alert`` now (one alert per order, step and kind of failure)."""
    return outcome.step_alert(order_id, step, error, failure=failure, kind=kind, now=datetime.now(UTC))


class _Steps:
    """The steps' futures, submit times and final states, for the audit trail."""

    def __init__(self) -> None:
        self.timings: dict[str, StepTiming] = {}

    def submit(self, step: Step, task: Any, *args: Any) -> PrefectFuture[Any]:
        self.timings[step] = StepTiming(step=step, submitted=datetime.now(UTC))
        return task.submit(*args)

    def outcome(self, step: Step, future: PrefectFuture[Any], order: Any = None) -> tuple[Any, str | None]:
        result, err = _outcome(future)
        timing = self.timings[step]
        timing.state_name = future.state.name
        timing.finished = future.state.timestamp
        timing.error = err
        if result is not None:
            timing.outcome = audit.outcome_line(step, result, order)
            if future.state.name == "Cached":  # the task did not run, so it logged nothing: say what it holds
                get_run_logger().info("%s: cached from an earlier run of this order, not done again: %s",
                                      step, timing.outcome)
        return result, err



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
    attempt = 0
    while True:
        try:
            return _process(order_id)
        except OrderNotFulfilled:
            raise  # the failing step was alerted
        except Exception as exc:
            delay = outcome.outside_retry_delay(exc, attempt)
            if delay is None:
                _alert_outside_steps(order_id, exc)
                raise
            attempt += 1
            get_run_logger().warning("order %s: %s outside the steps (%s); trying again in %.0f s (try %d), "
                                     "completed steps are skipped", order_id, type(exc).__name__,
                                     str(exc).splitlines()[0][:200] if str(exc) else "", delay, attempt + 1)
            time.sleep(delay)


def _alert_outside_steps(order_id: str, exc: BaseException) -> None:
    """A failure outside the steps (a ledger write at the start, the artifact...) is not silent."""
    alert = outcome.run_error_alert(order_id, exc, datetime.now(UTC))
    try:
        svc = process_services()
    except Exception as err:  # noqa: BLE001 - configuration itself is broken: the log is all that is left
        logging.getLogger("orderpipe.flow").critical("%s (and no alert sink: %s)", alert.message, err)
        return
    try:
        alerts.raise_alert(svc.engine, svc.alerts, alert)
    except Exception as err:  # noqa: BLE001 - the database is away: deliver anyway, unrecorded
        logging.getLogger("orderpipe.flow").error("alert %s not recorded (%s); delivering it unrecorded",
                                                  alert.dedupe_key, err)
        try:
            svc.alerts.send(alert)
        except Exception as send_err:  # noqa: BLE001
            logging.getLogger("orderpipe.flow").critical("%s (alert not delivered: %s)", alert.message, send_err)


def _process(order_id: str) -> dict[str, Any]:
    logger = get_run_logger()
    svc = process_services()
    run = get_run_context().flow_run  # type: ignore[union-attr]
    ledger.set_order_state(svc.engine, order_id, OrderState.RUNNING, flow_run_id=str(run.id))
    audit_steps = _Steps()

    order_future = audit_steps.submit(Step.FETCH_ORDER, fetch_order, order_id)
    order, err = audit_steps.outcome(Step.FETCH_ORDER, order_future)
    if order is None:
        ended = outcome.fetch_failed(order_id, err or "failed", _failure(order_future), datetime.now(UTC))
        for alert in ended.alerts:
            ops_alert(alert)
        ledger.set_order_state(svc.engine, order_id, ended.state, last_error=ended.last_error)
        _steps_artifact(order_id, audit_steps)
        _callback(order_id, ended.callback_status, failed_step=ended.failed_step)
        raise OrderNotFulfilled(ended.failure_message)

    _tag_run(order.country, order.currency)
    ledger.set_order_fields(svc.engine, order_id, customer_email=order.customer_email, country=order.country,
                            currency=order.currency, amount_total=order.amount_total)
    if order.fully_refunded or order.billing_invoice:
        return _cancelled(order)

    futures = {step: audit_steps.submit(step, task, order) for step, task in (
        (Step.CRM, crm), (Step.PRODUCTION_LOG, production_log), (Step.SHIPMENT, shipment), (Step.INVOICE, invoice))}
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    failures: dict[str, BaseException | str | None] = {}
    for step, fut in futures.items():
        results[step], e = audit_steps.outcome(step, fut, order)
        if e is not None:
            errors[step], failures[step] = e, _failure(fut)
    blocked_by = outcome.email_blocked_by(errors)
    if not blocked_by:
        email_future = audit_steps.submit(Step.EMAIL, email, order, results[Step.SHIPMENT], results[Step.INVOICE])
        results[Step.EMAIL], e = audit_steps.outcome(Step.EMAIL, email_future, order)
        if e is not None:
            errors[Step.EMAIL], failures[Step.EMAIL] = e, _failure(email_future)
    else:
        results[Step.EMAIL] = None
        blocked = " and ".join(blocked_by)
        logger.warning("email: not sent, because %s failed (it needs the tracking number and the invoice); "
                       "`orderpipe replay %s` sends it once that is fixed", blocked, order_id)

    shipped, invoiced = results.get(Step.SHIPMENT), results.get(Step.INVOICE)
    ledger.set_order_fields(
        svc.engine, order_id,
        tracking_number=shipped.tracking_number if shipped else None,
        invoice_number=invoiced.invoice_number if invoiced else None,
    )
    steps = ledger.steps_of(svc.engine, order_id)
    status = outcome.status_line(steps, errors)
    if results.get(Step.PRODUCTION_LOG) is not None:
        _, e = _outcome(production_log_status.submit(order_id, status))
        if e is not None:
            logger.warning("production log status not updated: %s", e)

    links = {
        "label": file_link(svc.files, shipped.label.key) if shipped else None,
        "invoice": file_link(svc.files, invoiced.pdf_key) if invoiced and invoiced.pdf_key else None,
    }
    create_markdown_artifact(
        key=artifact_key(order_id),
        markdown=order_markdown(order, steps=steps, crm=results.get(Step.CRM), shipment=shipped, invoice=invoiced,
                                email=results.get(Step.EMAIL), errors=errors, links=links,
                                payment=payment_summary(svc.engine, order_id, order.amount_total)),
        description=f"Order {order_id}",
    )
    _steps_artifact(order_id, audit_steps)
    ended = outcome.decide(order_id, errors=errors, failures=failures, steps=steps, now=datetime.now(UTC))
    for alert in ended.alerts:
        ops_alert(alert)
    ledger.set_order_state(svc.engine, order_id, ended.state, last_error=ended.last_error)
    _callback(order_id, ended.callback_status, tracking=shipped, invoice=invoiced, failed_step=ended.failed_step)
    if ended.failure_message is not None:
        raise OrderNotFulfilled(ended.failure_message)
    logger.info("order %s fulfilled: tracking %s, invoice %s", order_id, shipped.tracking_number,
                invoiced.invoice_number)
    return {"order_id": order_id, "tracking_number": shipped.tracking_number,
            "invoice_number": invoiced.invoice_number, "steps": steps}


def _steps_artifact(order_id: str, audit_steps: _Steps) -> None:
    """The table artifact: one row per step with its times and outcome."""
    create_table_artifact(key=steps_table_key(order_id), table=steps_table(list(audit_steps.timings.values())),
                          description=f"Steps of order {order_id}")


def _cancelled(order: Any) -> dict[str, Any]:
    """Refunded in full before fulfilment (or a Billing invoice's payment): nothing is shipped,
    invoiced or emailed; the refund's own run credits an invoice if one exists."""
    svc = process_services()
    why = (f"paid through Stripe invoice {order.billing_invoice} (Billing): not a shop order"
           if order.billing_invoice else
           f"refunded in full ({order.amount_refunded} of {order.amount_total}) before fulfilment")
    ledger.set_order_state(svc.engine, order.order_id, OrderState.CANCELLED, last_error=why)
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
