"""Reconciliation: compare Stripe with the ledger, start what is missing, re-drive failures.

1. Fulfilment events of the window (including undelivered ones) not in the ledger are
   recorded through the same path as a webhook delivery.
2. Succeeded PaymentIntents of the window without an order row are recorded, except
   payments of Stripe (Billing) invoices, which are recorded as ignored with the reason.
   A PaymentIntent refunded in full is recorded too: its run ends it `cancelled` at
   fetch_order, with nothing shipped, invoiced or emailed.
3. Refunds of the window (listed from Stripe) without a refund row are recorded; pending
   orders and refunds are started (one run each, by idempotency key).
4. Orders whose run Failed or Crashed are retried in place (the same flow run, so the
   per-order cache skips completed steps), at most MAX_AUTO_RETRIES times each.
5. Alerts not yet delivered to the sink are delivered again.
6. Finished orders whose status callback the shop never acknowledged get it again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from orderpipe.alerting import alerts
from orderpipe.bootstrap import Services
from orderpipe.connectors.base import Alert
from orderpipe.orders import ledger, refund_ledger
from orderpipe.orders.dispatcher import Dispatcher

MAX_AUTO_RETRIES = 3
log = logging.getLogger("orderpipe.reconcile")


@dataclass
class Report:
    events_recorded: list[str] = field(default_factory=list)
    orders_recorded: list[str] = field(default_factory=list)
    payments_ignored: list[str] = field(default_factory=list)
    refunds_recorded: list[str] = field(default_factory=list)
    orders_started: list[str] = field(default_factory=list)
    runs_retried: list[str] = field(default_factory=list)
    alerts_redelivered: int = 0
    callbacks_sent: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"events recorded:   {len(self.events_recorded)} {' '.join(self.events_recorded)}".rstrip(),
            f"orders recorded:   {len(self.orders_recorded)} {' '.join(self.orders_recorded)}".rstrip(),
            f"payments ignored:  {len(self.payments_ignored)} {' '.join(self.payments_ignored)}".rstrip(),
            f"refunds recorded:  {len(self.refunds_recorded)} {' '.join(self.refunds_recorded)}".rstrip(),
            f"orders started:    {len(self.orders_started)} {' '.join(self.orders_started)}".rstrip(),
            f"runs retried:      {len(self.runs_retried)} {' '.join(self.runs_retried)}".rstrip(),
            f"alerts redelivered: {self.alerts_redelivered}",
            f"callbacks sent:    {len(self.callbacks_sent)} {' '.join(self.callbacks_sent)}".rstrip(),
            *(f"problem: {p}" for p in self.problems),
        ]


def retry_flow_run(flow_run_id: str, message: str, *, force: bool = False) -> tuple[bool, int]:
    """Put a finished run back to AwaitingRetry (what the UI's Retry button does)."""
    from prefect.client.orchestration import get_client
    from prefect.states import Scheduled

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(flow_run_id)
        result = client.set_flow_run_state(run.id, Scheduled(name="AwaitingRetry", message=message), force=force)
        return result.status.value == "ACCEPT", run.run_count


def _failed_runs(order_ids: dict[str, str]) -> dict[str, tuple[str, int]]:
    """order id -> (state type, run_count) for runs that are FAILED or CRASHED on the server."""
    from prefect.client.orchestration import get_client

    out: dict[str, tuple[str, int]] = {}
    with get_client(sync_client=True) as client:
        for order_id, run_id in order_ids.items():
            run = client.read_flow_run(run_id)
            if run.state_type is not None and run.state_type.value in ("FAILED", "CRASHED"):
                out[order_id] = (run.state_type.value, run.run_count)
    return out


def reconcile_now(svc: Services, *, since: timedelta = timedelta(hours=24)) -> Report:
    report = Report()
    start = datetime.now(UTC) - since
    engine = svc.engine

    try:
        events = svc.stripe.list_fulfilment_events(start, undelivered_only=False)
        known = ledger.known_event_ids(engine, [e["id"] for e in events])
        for event in events:
            if event["id"] in known:
                continue
            recorded = ledger.record_reconciled_event(engine, event)
            report.events_recorded.append(event["id"])
            if recorded.status == "accepted" and recorded.order_id:
                report.orders_recorded.append(recorded.order_id)
        for pi in svc.stripe.list_succeeded_payment_intent_objects(start):
            pi_id = pi["id"]
            skip_id = f"reconcile:{pi_id}"
            if ledger.get_order(engine, pi_id) is not None or ledger.known_event_ids(engine, [skip_id]):
                continue
            billing = svc.stripe.billing_invoice_of(pi)
            if billing:
                if ledger.record_ignored(engine, skip_id, pi_id,
                                         f"paid through Stripe invoice {billing} (Billing): not a shop order"):
                    report.payments_ignored.append(pi_id)
            elif ledger.record_missing_order(engine, pi_id, source=skip_id):
                report.orders_recorded.append(pi_id)
        for refund in svc.stripe.list_refunds(since=start):
            pi = refund.get("payment_intent")
            if refund_ledger.record_refund(engine, refund["id"], pi.get("id") if isinstance(pi, dict) else pi,
                                           refund.get("charge"), source=f"reconcile:{refund['id']}"):
                report.refunds_recorded.append(refund["id"])
    except Exception as exc:  # noqa: BLE001 - Stripe unreachable: still re-drive what we know
        report.problems.append(f"listing Stripe failed: {exc}")

    dispatcher = Dispatcher(engine)
    report.orders_started = [i for i in dispatcher.dispatch_once(limit=500) if not i.startswith(("re_", "du_"))]
    retry_failed_refunds(svc, report)

    failed = {o.order_id: o.flow_run_id for o in ledger.orders_in_states(engine, ["failed", "running"], since=start)
              if o.flow_run_id}
    try:
        for order_id, (state, run_count) in _failed_runs(failed).items():  # type: ignore[arg-type]
            if run_count > MAX_AUTO_RETRIES:
                _alert_given_up(svc, order_id, state, run_count)
                continue
            accepted, _ = retry_flow_run(failed[order_id], f"reconcile: retry after {state}")  # type: ignore[arg-type]
            if accepted:
                ledger.set_order_state(engine, order_id, "running")
                report.runs_retried.append(order_id)
    except Exception as exc:  # noqa: BLE001
        report.problems.append(f"reading flow runs failed: {exc}")

    for alert in alerts.undelivered(engine):
        if alerts.deliver(engine, svc.alerts, alert):
            report.alerts_redelivered += 1
    if svc.status_callback is not None:
        resend_callbacks(svc, start, report)
    for line in report.lines():
        log.info(line)
    return report


def _alert_given_up(svc: Services, order_id: str, state: str, run_count: int) -> None:
    """Reconciliation stops re-driving an order: a person hears of it, once."""
    row = ledger.get_order(svc.engine, order_id)
    alert = Alert(order_id=order_id, step="reconcile", kind="gave_up", occurred_at=datetime.now(UTC),
                  dedupe_key=f"gave_up:{order_id}:reconcile:{state}",
                  message=f"order {order_id}: reconciliation gave up after {run_count} runs ended {state}; "
                          f"last error: {(row.last_error if row else None) or 'none recorded'}. Fix the cause, "
                          f"then `orderpipe replay {order_id}`.")
    try:
        alerts.raise_alert(svc.engine, svc.alerts, alert)
    except Exception as exc:  # noqa: BLE001 - the rest of the reconciliation still runs
        log.error("order %s: gave-up alert not recorded: %s", order_id, exc)


def retry_failed_refunds(svc: Services, report: Report) -> None:
    """Refund runs that failed (e.g. the order's invoice never came in the wait) are retried in
    place, at most MAX_AUTO_RETRIES times: the per-refund cache skips what was done."""
    rows = {r.refund_id: r.flow_run_id for r in refund_ledger.refunds_in_states(svc.engine, ["failed"])
            if r.flow_run_id}
    if not rows:
        return
    try:
        for refund_id, (state, run_count) in _failed_runs(rows).items():  # type: ignore[arg-type]
            if run_count > MAX_AUTO_RETRIES:
                continue
            accepted, _ = retry_flow_run(rows[refund_id], f"reconcile: retry after {state}")  # type: ignore[arg-type]
            if accepted:
                refund_ledger.set_refund(svc.engine, refund_id, state="running")
                report.runs_retried.append(refund_id)
    except Exception as exc:  # noqa: BLE001
        report.problems.append(f"reading refund runs failed: {exc}")


def resend_callbacks(svc: Services, start: datetime, report: Report) -> None:
    """Status callbacks whose task gave up (the shop was down) are sent until acknowledged."""
    from orderpipe.connectors.status_callback import callback_payload
    from orderpipe.errors import StepError

    assert svc.status_callback is not None
    for row in ledger.orders_in_states(svc.engine, ["completed", "failed"], since=start):
        status = "fulfilled" if row.state == "completed" else "failed"
        steps = ledger.steps_of(svc.engine, row.order_id)
        failed_step = next((s for s, st in steps.items() if st == "failed"), None) if status == "failed" else None
        payload = callback_payload(row.order_id, status, tracking_number=row.tracking_number,
                                   invoice_number=row.invoice_number, failed_step=failed_step)
        try:
            if svc.status_callback.notify(payload):
                report.callbacks_sent.append(row.order_id)
        except StepError as exc:
            report.problems.append(f"status callback for {row.order_id}: {exc}")
