"""Reconciliation: compare Stripe with the ledger, start what is missing, re-drive failures.

1. Fulfilment events of the window (including undelivered ones) not in the ledger are
   recorded through the same path as a webhook delivery.
2. Succeeded PaymentIntents of the window without an order row are recorded, except
   payments of Stripe (Billing) invoices, which are recorded as ignored with the reason.
   A PaymentIntent refunded in full is recorded too: its run ends it `cancelled` at
   fetch_order, with nothing shipped, invoiced or emailed.
3. Refunds of the window (listed from Stripe) without a refund row are recorded.
4. Dispute events of the window (``charge.dispute.*``, listed from Stripe's Events API)
   not in the ledger are recorded through the receiver's own path, oldest first: a new
   dispute raises its one alert, a newer state updates it (an older one never reopens a
   closed dispute), a lost one becomes a refund row of kind ``dispute``. The Events API
   keeps 30 days: a longer window finds no older dispute events.
5. Pending orders and refunds (a lost dispute's too) are started (one run each, by
   idempotency key).
6. Orders whose run Failed or Crashed are retried in place (the same flow run, so the
   per-order cache skips completed steps), at most MAX_AUTO_RETRIES times each.
7. Alerts not yet delivered to the sink are delivered (a reconciled dispute's alert too).
8. Finished orders whose status callback the shop never acknowledged get it again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from orderpipe.alerting import alerts
from orderpipe.bootstrap import Services
from orderpipe.orders import ledger, refund_ledger
from orderpipe.orders import reconcile_rules as rules
from orderpipe.orders.dispatcher import Dispatcher
from orderpipe.orders.prefect_api import PrefectApi, PrefectClientApi, RunInfo
from orderpipe.orders.reconcile_rules import MAX_AUTO_RETRIES, PaymentAction, RunAction
from orderpipe.states import OrderState

__all__ = ["MAX_AUTO_RETRIES", "Report", "reconcile_now", "record_missed_disputes", "resend_callbacks",
           "retry_flow_run"]
log = logging.getLogger("orderpipe.reconcile")
#: What the dispatcher starts that is a refund run, not an order's (a lost dispute is credited as a refund).
REFUND_ID_PREFIXES = ("re_", "pyr_", "du_")


@dataclass
class Report:
    events_recorded: list[str] = field(default_factory=list)
    orders_recorded: list[str] = field(default_factory=list)
    payments_ignored: list[str] = field(default_factory=list)
    refunds_recorded: list[str] = field(default_factory=list)
    disputes_recorded: list[str] = field(default_factory=list)
    orders_started: list[str] = field(default_factory=list)
    refunds_started: list[str] = field(default_factory=list)
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
            f"disputes recorded: {len(self.disputes_recorded)} {' '.join(self.disputes_recorded)}".rstrip(),
            f"orders started:    {len(self.orders_started)} {' '.join(self.orders_started)}".rstrip(),
            f"refunds started:   {len(self.refunds_started)} {' '.join(self.refunds_started)}".rstrip(),
            f"runs retried:      {len(self.runs_retried)} {' '.join(self.runs_retried)}".rstrip(),
            f"alerts redelivered: {self.alerts_redelivered}",
            f"callbacks sent:    {len(self.callbacks_sent)} {' '.join(self.callbacks_sent)}".rstrip(),
            *(f"problem: {p}" for p in self.problems),
        ]


def retry_flow_run(flow_run_id: str, message: str, *, force: bool = False,
                   prefect: PrefectApi | None = None) -> tuple[bool, int]:
    """Put a finished run back to AwaitingRetry (what the UI's Retry button does)."""
    result = (prefect or PrefectClientApi()).retry_run(flow_run_id, message, force=force)
    return result.accepted, result.run_count


def _runs(prefect: PrefectApi, run_ids: dict[str, str]) -> dict[str, RunInfo]:
    """order (or refund) id -> its run as the server has it now."""
    with prefect.connected() as api:
        return {key: api.read_run(run_id) for key, run_id in run_ids.items()}


def reconcile_now(svc: Services, *, since: timedelta = timedelta(hours=24),
                  prefect: PrefectApi | None = None) -> Report:
    """`prefect`: the Prefect API (a fake in tests); by default Prefect's client."""
    report = Report()
    start = datetime.now(UTC) - since
    engine = svc.engine
    prefect = prefect if prefect is not None else PrefectClientApi()

    try:
        events = svc.stripe.list_fulfilment_events(start, undelivered_only=False)
        known = ledger.known_event_ids(engine, [e["id"] for e in events])
        for event in rules.new_events(events, known):
            recorded = ledger.record_reconciled_event(engine, event)
            report.events_recorded.append(event["id"])
            if recorded.status == "accepted" and recorded.order_id:
                report.orders_recorded.append(recorded.order_id)
        for pi in svc.stripe.list_succeeded_payment_intent_objects(start):
            pi_id = pi["id"]
            skip_id = rules.skip_event_id(pi_id)
            has_order = ledger.get_order(engine, pi_id) is not None
            seen = has_order or bool(ledger.known_event_ids(engine, [skip_id]))
            decision = rules.payment_intent_decision(
                has_order=has_order, already_seen=seen,
                billing_invoice=None if seen else svc.stripe.billing_invoice_of(pi))
            if decision.action == PaymentAction.IGNORE:
                if ledger.record_ignored(engine, skip_id, pi_id, decision.reason):
                    report.payments_ignored.append(pi_id)
            elif decision.action == PaymentAction.RECORD and ledger.record_missing_order(engine, pi_id,
                                                                                         source=skip_id):
                report.orders_recorded.append(pi_id)
        for refund in svc.stripe.list_refunds(since=start):
            pi = refund.get("payment_intent")
            if refund_ledger.record_refund(engine, refund["id"], pi.get("id") if isinstance(pi, dict) else pi,
                                           refund.get("charge"), source=f"reconcile:{refund['id']}"):
                report.refunds_recorded.append(refund["id"])
    except Exception as exc:  # noqa: BLE001 - Stripe unreachable: still re-drive what we know
        report.problems.append(f"listing Stripe failed: {exc}")
    try:
        record_missed_disputes(svc, start, report)
    except Exception as exc:  # noqa: BLE001 - as above; the next reconciliation lists them again
        report.problems.append(f"reconciling Stripe disputes failed: {exc}")

    dispatcher = Dispatcher(engine, prefect=prefect)
    for started in dispatcher.dispatch_once(limit=500):
        (report.refunds_started if started.startswith(REFUND_ID_PREFIXES) else report.orders_started).append(started)
    retry_failed_refunds(svc, report, prefect)

    failed = {o.order_id: o.flow_run_id for o in ledger.orders_in_states(engine, list(rules.ORDER_STATES_TO_CHECK),
                                                                        since=start)
              if o.flow_run_id}
    try:
        for order_id, run in _runs(prefect, failed).items():  # type: ignore[arg-type]
            action = rules.run_decision(run)
            if action == RunAction.GIVE_UP:
                _alert_given_up(svc, order_id, run)
            elif action == RunAction.RETRY:
                if prefect.retry_run(failed[order_id], rules.retry_message(run)).accepted:  # type: ignore[arg-type]
                    ledger.set_order_state(engine, order_id, OrderState.RUNNING)
                    report.runs_retried.append(order_id)
    except Exception as exc:  # noqa: BLE001
        report.problems.append(f"reading flow runs failed: {exc}")

    try:
        report.alerts_redelivered += alerts.Outbox(engine, svc.alerts).deliver_pending()
    except Exception as exc:  # noqa: BLE001 - the worker's outbox round tries again
        report.problems.append(f"delivering alerts failed: {exc}")
    if svc.status_callback is not None:
        resend_callbacks(svc, start, report)
    for line in report.lines():
        log.info(line)
    return report


def record_missed_disputes(svc: Services, start: datetime, report: Report) -> None:
    """Dispute events Stripe lists since ``start`` that the ledger lacks are recorded as the
    receiver records a delivery (``ledger.record_reconciled_event``, deduplicated by event id,
    and by dispute id in the dispute table): one alert per dispute, a lost dispute's refund row."""
    events = svc.stripe.list_dispute_events(start)
    known = ledger.known_event_ids(svc.engine, [e["id"] for e in events])
    for event in rules.missed_dispute_events(events, known):
        recorded = ledger.record_reconciled_event(svc.engine, dict(event))
        if recorded.new_event:
            report.events_recorded.append(recorded.event_id)
        dispute_id = rules.dispute_id_of(event)
        if (dispute_id and dispute_id not in report.disputes_recorded
                and rules.dispute_recorded(recorded.status, new_event=recorded.new_event)):
            report.disputes_recorded.append(dispute_id)


def _alert_given_up(svc: Services, order_id: str, run: RunInfo) -> None:
    """Reconciliation stops re-driving an order: a person hears of it, once."""
    row = ledger.get_order(svc.engine, order_id)
    alert = rules.gave_up_alert(order_id, run, row.last_error if row else None, datetime.now(UTC))
    try:
        alerts.raise_alert(svc.engine, svc.alerts, alert)
    except Exception as exc:  # noqa: BLE001 - the rest of the reconciliation still runs
        log.error("order %s: gave-up alert not recorded: %s", order_id, exc)


def retry_failed_refunds(svc: Services, report: Report, prefect: PrefectApi | None = None) -> None:
    """Refund runs that failed (e.g. the order's invoice never came in the wait) are retried in
    place, at most MAX_AUTO_RETRIES times: the per-refund cache skips what was done."""
    rows = {r.refund_id: r.flow_run_id for r in refund_ledger.refunds_in_states(svc.engine, ["failed"])
            if r.flow_run_id}
    if not rows:
        return
    prefect = prefect if prefect is not None else PrefectClientApi()
    try:
        for refund_id, run in _runs(prefect, rows).items():  # type: ignore[arg-type]
            if rules.run_decision(run) != RunAction.RETRY:
                continue
            if prefect.retry_run(rows[refund_id], rules.retry_message(run)).accepted:  # type: ignore[arg-type]
                refund_ledger.set_refund(svc.engine, refund_id, state="running")
                report.runs_retried.append(refund_id)
    except Exception as exc:  # noqa: BLE001
        report.problems.append(f"reading refund runs failed: {exc}")


def resend_callbacks(svc: Services, start: datetime, report: Report) -> None:
    """Status callbacks whose task gave up (the shop was down) are sent until acknowledged."""
    from orderpipe.connectors.status_callback import callback_payload
    from orderpipe.errors import StepError

    assert svc.status_callback is not None
    for row in ledger.orders_in_states(svc.engine, list(rules.CALLBACK_STATES), since=start):
        callback = rules.callback_for(row.state, ledger.steps_of(svc.engine, row.order_id))
        payload = callback_payload(row.order_id, callback.status, tracking_number=row.tracking_number,
                                   invoice_number=row.invoice_number, failed_step=callback.failed_step)
        try:
            if svc.status_callback.notify(payload):
                report.callbacks_sent.append(row.order_id)
        except StepError as exc:
            report.problems.append(f"status callback for {row.order_id}: {exc}")
