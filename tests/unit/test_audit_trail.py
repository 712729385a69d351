"""The audit trail's wording and the names defined once (no Prefect, no database)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from orderpipe import audit
from orderpipe.artifact import StepTiming, artifact_key, order_markdown, steps_table, steps_table_key
from orderpipe.connectors.base import (
    Alert,
    CrmResult,
    EmailResult,
    InvoiceResult,
    ProductionLogResult,
    ShipmentResult,
    StoredFile,
)
from orderpipe.order import Order, OrderLine
from orderpipe.orders import ledger
from orderpipe.states import (
    FULFILMENT_TYPES,
    STEPS,
    DispatchState,
    EventStatus,
    OrderState,
    PaymentStatus,
    Step,
    StepState,
)
from orderpipe.stripe_api.standin import events as standin_events
from tasks.step_policy import order_step_key, run_name

ORDER = Order(order_id="pi_3AuditTrail000001", created=datetime(2026, 11, 23, tzinfo=UTC), currency="eur",
              amount_total=8735, customer_email="aino@example.fi", country="FI", locale="fi",
              lines=[OrderLine(description="Mug", quantity=1, amount_subtotal=8735, amount_total=8735)])
SHIPPED = ShipmentResult(tracking_number="RR000000016FI", carrier="local", tracking_url="https://t.example/RR",
                         label=StoredFile(key="labels/pi_3AuditTrail000001.pdf", url="https://s3.example/x?X-Sig=1"),
                         created=True)
INVOICED = InvoiceResult(invoice_number="2026-000007", issue_date="2026-11-23", currency="eur", amount_total=8735,
                         amount_tax=1776, pdf_key="invoices/2026-000007.pdf", created=True)


def test_enum_values_are_the_stored_and_contract_strings() -> None:
    assert [str(s) for s in STEPS] == ["fetch_order", "crm", "production_log", "shipment", "invoice", "email"]
    assert ledger.STEPS is STEPS and ledger.FULFILMENT_TYPES is FULFILMENT_TYPES
    assert standin_events.FULFILMENT_TYPES is FULFILMENT_TYPES  # one definition
    assert {s.value for s in OrderState} == {"received", "running", "completed", "failed", "cancelled",
                                             "needs_attention"}
    assert {s.value for s in StepState} == {"pending", "running", "completed", "failed", "needs_attention"}
    assert {s.value for s in PaymentStatus} == {"paid", "partially_refunded", "refunded", "disputed"}
    assert {s.value for s in DispatchState} == {"pending", "started"}
    assert {s.value for s in EventStatus} == {"accepted", "duplicate", "ignored", "alerted"}
    # rows stored as plain strings read back as the members; JSON carries the plain value
    assert OrderState("completed") is OrderState.COMPLETED and "completed" == OrderState.COMPLETED
    assert json.dumps({Step.CRM: StepState.COMPLETED}) == '{"crm": "completed"}'
    assert f"{Step.PRODUCTION_LOG}" == "production_log"


def test_cache_key_is_unchanged_by_the_enum_and_the_run_name() -> None:
    class Ctx:
        class task:  # noqa: N801 - stands in for Prefect's TaskRunContext.task
            name = Step.INVOICE.value

    assert order_step_key(Ctx, {"order": ORDER}) == "invoice-order-pi_3AuditTrail000001"  # results cached in 2026


def test_task_run_names_name_the_step_and_the_order() -> None:
    assert run_name(Step.CRM)(parameters={"order": ORDER}) == "crm · pi_3AuditTrail000001"
    assert run_name(Step.FETCH_ORDER)(parameters={"order_id": "pi_1"}) == "fetch_order · pi_1"
    alert = Alert(order_id="pi_2", step="crm", kind="step_failed", message="m", dedupe_key="k")
    assert run_name("ops_alert")(parameters={"alert": alert}) == "ops_alert · pi_2"
    assert run_name("status_callback")(parameters={"payload": {"order_id": "pi_3"}}) == "status_callback · pi_3"
    assert audit.step_of_task_run_name("production_log · pi_3Abc") == "production_log"


def test_each_step_logs_its_business_outcome_in_one_line() -> None:
    lines = {
        Step.FETCH_ORDER: audit.outcome_line(Step.FETCH_ORDER, ORDER),
        Step.CRM: audit.outcome_line(Step.CRM, CrmResult(contact_id="c-1", deal_id="deal-42", created=True)),
        Step.PRODUCTION_LOG: audit.outcome_line(Step.PRODUCTION_LOG, ProductionLogResult(entry_id="rec9",
                                                                                        created=False)),
        Step.SHIPMENT: audit.outcome_line(Step.SHIPMENT, SHIPPED),
        Step.INVOICE: audit.outcome_line(Step.INVOICE, INVOICED),
        Step.EMAIL: audit.outcome_line(Step.EMAIL, EmailResult(message_id="<m1@x>", language="fi",
                                                               transport="outbox", created=True), ORDER),
    }
    assert "87.35 EUR" in lines[Step.FETCH_ORDER]
    assert lines[Step.CRM] == "deal deal-42 for contact c-1"
    assert "rec9" in lines[Step.PRODUCTION_LOG] and "already there" in lines[Step.PRODUCTION_LOG]
    assert "RR000000016FI" in lines[Step.SHIPMENT] and "local" in lines[Step.SHIPMENT]
    assert "X-Sig" not in lines[Step.SHIPMENT]  # presigned URLs are bearer links: artifact only, never logs
    assert "2026-000007" in lines[Step.INVOICE] and "87.35 EUR" in lines[Step.INVOICE]
    assert "17.76 EUR" in lines[Step.INVOICE]
    assert lines[Step.EMAIL].startswith("confirmation sent to the customer") and "language fi" in lines[Step.EMAIL]
    assert not any(ORDER.customer_email in line for line in lines.values())  # logs Prefect cannot delete
    assert all("\n" not in line for line in lines.values())


def test_a_failed_step_says_what_a_person_can_do() -> None:
    line = audit.failure_line(Step.SHIPMENT, "pi_9", "no shipping address", permanent=True)
    assert line.startswith("shipment failed for order pi_9: no shipping address")
    assert "shipping address in Stripe" in line and "orderpipe replay pi_9" in line
    assert "retrying cannot fix" in line
    assert "kept failing" in audit.failure_line(Step.CRM, "pi_9", "HTTP 503", permanent=False)


def test_markdown_artifact_links_label_and_invoice() -> None:
    md = order_markdown(ORDER, steps={s: "completed" for s in STEPS}, crm=None, shipment=SHIPPED,
                        invoice=INVOICED, email=None, errors={},
                        links={"label": "https://s3.example/labels/fresh?sig", "invoice": "/data/invoices/2026.pdf"})
    assert "[labels/pi_3AuditTrail000001.pdf](https://s3.example/labels/fresh?sig)" in md
    assert "`/data/invoices/2026.pdf`" in md  # a local path, shown to copy
    no_links = order_markdown(ORDER, steps={}, crm=None, shipment=SHIPPED, invoice=INVOICED, email=None, errors={})
    assert "https://s3.example/x?X-Sig=1" in no_links and "`invoices/2026-000007.pdf`" in no_links


def test_steps_table_lists_every_step_with_times_and_outcome() -> None:
    t0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
    rows = steps_table([
        StepTiming(Step.FETCH_ORDER, t0, t0 + timedelta(seconds=0.4), "Completed", "order read"),
        StepTiming(Step.SHIPMENT, t0, t0 + timedelta(seconds=2), "Failed", error="no shipping address"),
    ])
    assert [r["step"] for r in rows] == [str(s) for s in STEPS]
    assert rows[0] == {"step": "fetch_order", "state": "Completed", "started": "12:00:00.000 UTC",
                       "finished": "12:00:00.400 UTC", "took": "0.40 s", "outcome": "order read"}
    assert rows[3]["state"] == "Failed" and rows[3]["outcome"] == "failed: no shipping address"
    assert rows[1]["state"] == "not run"
    assert steps_table_key("pi_3Abc_X") == "order-pi-3abc-x-steps" == artifact_key("pi_3Abc_X") + "-steps"


def test_local_store_links_are_absolute_paths(tmp_path: Path) -> None:
    from orderpipe.artifact import file_link
    from orderpipe.connectors.file_store_local import LocalFileStore

    files = LocalFileStore(tmp_path)
    files.put("labels/pi_1.pdf", b"%PDF", "application/pdf")
    assert file_link(files, "labels/pi_1.pdf") == str((tmp_path / "labels" / "pi_1.pdf").resolve())
    assert file_link(files, "../escape.pdf") is None  # an invalid key gives no link, not a failed order
