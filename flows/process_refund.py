"""process-refund: one flow run per Stripe refund (``refund-<re id>``), or per lost dispute
(``refund-<du id>``, credited like a refund).

fetch_refund (read back from Stripe) -> refund_order (the order as Stripe has it) ->
credit_note (waits for the order's invoice) -> crm_refund, production_log_refund,
email_credit_note (concurrently) -> status callback (``refunded`` | ``partially_refunded``: the
contract's one per order and status, so a second partial refund does not repeat it)
-> the order's artifact rewritten with payment status, refunded amount and credit notes.

Outcomes (the refund row's ``state``):
- completed: credited (or the order was cancelled before it was invoiced: nothing to credit);
- not_credited: the refund failed or was cancelled at Stripe, or the dispute was not lost;
- needs_attention: the refund names an order orderpipe has no record of, or is larger than
  what is left to refund on the invoice; one ops alert each, no credit note;
- failed: a step kept failing (one ops alert); reconciliation retries the run.
"""

from __future__ import annotations

import logging
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.context import get_run_context

from flows.process_order import _alert, _outcome
from orderpipe.artifact import artifact_key, order_status_markdown
from orderpipe.bootstrap import process_services
from orderpipe.connectors.base import Alert
from orderpipe.connectors.status_callback import callback_payload
from orderpipe.email.texts import pick_language
from orderpipe.invoicing.credit_note import RefundExceedsInvoice
from orderpipe.orders import ledger, refund_ledger
from orderpipe.tables import utcnow
from tasks.notify import ops_alert, status_callback
from tasks.refund import (
    credit_note,
    crm_refund,
    email_credit_note,
    fetch_refund,
    production_log_refund,
    refund_order,
)

CREDITABLE = frozenset({"succeeded", "pending", "requires_action"})


class RefundNotCredited(RuntimeError):
    """Raised at the end of a refund run in which a step failed."""


def on_crashed(flow: Any, flow_run: Any, state: Any) -> None:
    refund_id = (flow_run.parameters or {}).get("refund_id")
    if not refund_id:
        return
    try:
        refund_ledger.set_refund(process_services().engine, refund_id,
                                 last_error=f"run {flow_run.name} crashed: {state.message or state.name}")
    except Exception as exc:  # noqa: BLE001 - a hook must not raise
        logging.getLogger("orderpipe.flow").error("crash of %s not recorded: %s", refund_id, exc)


def _attention(refund_id: str, order_id: str | None, kind: str, message: str) -> dict[str, Any]:
    svc = process_services()
    ops_alert(Alert(order_id=order_id, step="credit_note", kind=kind, dedupe_key=f"{kind}:{refund_id}",
                    message=message, occurred_at=utcnow()))
    refund_ledger.set_refund(svc.engine, refund_id, state="needs_attention", last_error=message)
    get_run_logger().warning(message)
    return {"refund_id": refund_id, "order_id": order_id, "state": "needs_attention", "credit_note": None}


@flow(name="process-refund", flow_run_name="refund-{refund_id}", persist_result=True, on_crashed=[on_crashed],
      validate_parameters=False)
def process_refund(refund_id: str) -> dict[str, Any]:
    if not isinstance(refund_id, str) or not refund_id.startswith(("re_", "pyr_", "du_")):
        raise TypeError(f"process-refund takes a refund (re_...) or dispute (du_...) id, not {refund_id!r}")
    logger = get_run_logger()
    svc = process_services()
    run = get_run_context().flow_run  # type: ignore[union-attr]
    refund_ledger.set_refund(svc.engine, refund_id, state="running", flow_run_id=str(run.id))

    info, err = _outcome(fetch_refund.submit(refund_id))
    if info is None:
        ops_alert(_alert(refund_id, "fetch_refund", err or "failed"))
        refund_ledger.set_refund(svc.engine, refund_id, state="failed", last_error=f"fetch_refund: {err}")
        raise RefundNotCredited(f"refund {refund_id}: fetch_refund failed: {err}")
    order_id = info.order_id
    if (info.kind == "refund" and info.status not in CREDITABLE) or (info.kind == "dispute" and info.status != "lost"):
        why = f"{info.kind} {refund_id} is {info.status} at Stripe: nothing to credit"
        refund_ledger.set_refund(svc.engine, refund_id, state="not_credited", last_error=why)
        logger.info(why)
        return {"refund_id": refund_id, "order_id": order_id, "state": "not_credited", "credit_note": None}
    row = ledger.get_order(svc.engine, order_id) if order_id else None
    if row is None:
        return _attention(refund_id, order_id, "refund_unknown_order",
                          f"{info.kind} {refund_id} of {info.amount} {info.currency.upper()} names order "
                          f"{order_id or '(no PaymentIntent)'}, which orderpipe has no record of; recorded, "
                          "nothing credited; a person must check")

    order, err = _outcome(refund_order.submit(row.order_id))
    if order is None:
        ops_alert(_alert(row.order_id, "refund_order", err or "failed"))
        refund_ledger.set_refund(svc.engine, refund_id, state="failed", last_error=f"refund_order: {err}")
        raise RefundNotCredited(f"refund {refund_id}: reading order {row.order_id} failed: {err}")
    language = pick_language(order.locale, order.country)

    cn_future = credit_note.submit(info, language)
    cn, err = _outcome(cn_future)
    if err is not None:
        exc = cn_future.state.result(raise_on_failure=False)
        if isinstance(exc, RefundExceedsInvoice):
            return _attention(refund_id, row.order_id, "refund_exceeds_invoice",
                              f"order {row.order_id}: {exc}; refund {refund_id} needs a person")
        ops_alert(_alert(row.order_id, "credit_note", f"refund {refund_id}: {err}"))
        refund_ledger.set_refund(svc.engine, refund_id, state="failed", last_error=f"credit_note: {err}")
        raise RefundNotCredited(f"refund {refund_id}: credit_note failed: {err}")
    if cn is not None:
        refund_ledger.set_refund(svc.engine, refund_id, credit_note_number=cn.number)

    row = ledger.get_order(svc.engine, row.order_id)
    assert row is not None
    payment = refund_ledger.payment_summary(svc.engine, row.order_id, row.amount_total)
    errors: dict[str, str] = {}
    if cn is not None:
        futures = {
            "crm_refund": crm_refund.submit(info, payment["payment_status"], payment["refunded_amount"]),
            "production_log_refund": production_log_refund.submit(
                row.order_id, f"{payment['payment_status']}: credit notes "
                + ", ".join(n["number"] for n in payment["credit_notes"])),
            "email_credit_note": email_credit_note.submit(info, order, cn),
        }
        for step, fut in futures.items():
            _, e = _outcome(fut)
            if e is not None:
                errors[step] = e
    if svc.status_callback is not None and payment["payment_status"] in ("refunded", "partially_refunded"):
        status_callback.submit(callback_payload(row.order_id, payment["payment_status"],
                                                tracking_number=row.tracking_number,
                                                invoice_number=row.invoice_number)).wait()
    note = (f"Credit note {cn.number} for {info.kind} {refund_id}." if cn is not None
            else f"{info.kind.capitalize()} {refund_id}: the order was cancelled before it was invoiced; "
                 "nothing to credit.")
    create_markdown_artifact(key=artifact_key(row.order_id),
                             markdown=order_status_markdown(row, ledger.steps_of(svc.engine, row.order_id), payment,
                                                            note),
                             description=f"Order {row.order_id}")
    for step, error in errors.items():
        ops_alert(_alert(row.order_id, step, f"refund {refund_id}: {error}"))
    if errors:
        refund_ledger.set_refund(svc.engine, refund_id, state="failed",
                                 last_error="; ".join(f"{k}: {v}" for k, v in errors.items()))
        raise RefundNotCredited(f"refund {refund_id}: " + "; ".join(f"{k} failed: {v}" for k, v in errors.items()))
    refund_ledger.set_refund(svc.engine, refund_id, state="completed", last_error=None)
    logger.info("refund %s of order %s: %s", refund_id, row.order_id, note)
    return {"refund_id": refund_id, "order_id": row.order_id, "state": "completed",
            "credit_note": cn.number if cn is not None else None, "payment_status": payment["payment_status"]}
