"""Dispatcher and reconciliation on a real database with the in-memory FakePrefect: every
Prefect decision path in milliseconds, without a server."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Engine, update

from orderpipe.alerting import alerts
from orderpipe.alerting.log import LogAlerts
from orderpipe.db import aware, session_scope
from orderpipe.orders import ledger
from orderpipe.orders.dispatcher import Dispatcher
from orderpipe.orders.reconciliation import reconcile_now, retry_flow_run
from orderpipe.tables import OrderRecord, utcnow
from tests.fakes import FakePrefect


class QuietStripe:
    """Stripe with nothing new in the window (reconcile then only re-drives what it knows)."""

    def __init__(self, payment_intents: list[dict[str, Any]] | None = None) -> None:
        self.payment_intents = payment_intents or []

    def list_fulfilment_events(self, start: Any, undelivered_only: bool = False) -> list[dict[str, Any]]:
        return []

    def list_succeeded_payment_intent_objects(self, start: Any) -> list[dict[str, Any]]:
        return self.payment_intents

    def billing_invoice_of(self, pi: dict[str, Any]) -> str | None:
        return pi.get("invoice")

    def list_refunds(self, **_: Any) -> list[dict[str, Any]]:
        return []

    def list_dispute_events(self, start: Any) -> list[dict[str, Any]]:
        return []


def services(engine: Engine, stripe: QuietStripe | None = None) -> Any:
    return SimpleNamespace(engine=engine, stripe=stripe or QuietStripe(), alerts=LogAlerts(), status_callback=None)


def test_dispatch_starts_each_due_order_once_by_idempotency_key(engine: Engine) -> None:
    prefect = FakePrefect()
    for i in range(3):
        ledger.record_missing_order(engine, f"pi_D{i}", source="test")
    assert sorted(Dispatcher(engine, prefect=prefect).dispatch_once()) == ["pi_D0", "pi_D1", "pi_D2"]
    assert Dispatcher(engine, prefect=prefect).dispatch_once() == []  # nothing due any more
    run = prefect.run_of("pi_D1")
    assert run.name == "order-pi_D1" and run.parameters == {"order_id": "pi_D1"} and run.tags == ["orderpipe"]
    row = ledger.get_order(engine, "pi_D1")
    assert row is not None and row.dispatch == "started" and row.flow_run_id == run.id
    assert prefect.batches == 1  # one connection, only for the round that had orders to start


def test_prefect_down_backs_off_then_alerts_after_five_minutes_then_starts(engine: Engine) -> None:
    prefect = FakePrefect()
    prefect.down = True
    ledger.record_missing_order(engine, "pi_Down", source="test")
    dispatcher = Dispatcher(engine, prefect=prefect)
    assert dispatcher.start("pi_Down") is None
    row = ledger.get_order(engine, "pi_Down")
    assert row is not None and row.dispatch == "pending" and aware(row.next_dispatch_at) > utcnow()
    assert alerts.list_alerts(engine, "pi_Down") == []
    with session_scope(engine) as s:
        s.execute(update(OrderRecord).values(dispatch_failing_since=utcnow() - timedelta(minutes=6)))
    for _ in range(2):
        assert dispatcher.start("pi_Down") is None
    [alert] = alerts.list_alerts(engine, "pi_Down")
    assert alert.kind == "dispatch_failing"
    prefect.down = False
    assert dispatcher.start("pi_Down") == prefect.run_of("pi_Down").id


def test_a_missing_deployment_keeps_the_order_pending(engine: Engine) -> None:
    prefect = FakePrefect(deployments=())
    ledger.record_missing_order(engine, "pi_NoDeployment", source="test")
    assert Dispatcher(engine, prefect=prefect).dispatch_once() == []
    row = ledger.get_order(engine, "pi_NoDeployment")
    assert row is not None and row.dispatch == "pending" and "ObjectNotFound" in (row.last_error or "")


def test_reconcile_retries_failed_runs_three_times_then_gives_up_once(engine: Engine) -> None:
    prefect = FakePrefect()
    ledger.record_missing_order(engine, "pi_Flaky", source="test")
    [started] = Dispatcher(engine, prefect=prefect).dispatch_once()
    run_id = prefect.run_of("pi_Flaky").id
    svc = services(engine)
    for attempt in range(1, 4):
        prefect.finish(run_id, "FAILED")
        ledger.set_order_state(engine, "pi_Flaky", "failed", last_error="shipment: PostNord 500")
        report = reconcile_now(svc, prefect=prefect)
        assert report.runs_retried == ["pi_Flaky"], attempt
        assert ledger.get_order(engine, "pi_Flaky").state == "running"  # type: ignore[union-attr]
    prefect.finish(run_id, "CRASHED")
    ledger.set_order_state(engine, "pi_Flaky", "failed")
    for _ in range(2):
        assert reconcile_now(svc, prefect=prefect).runs_retried == []
    [alert] = alerts.list_alerts(engine, "pi_Flaky")
    assert alert.kind == "gave_up" and alert.dedupe_key == "gave_up:pi_Flaky:reconcile:CRASHED"
    assert prefect.runs[run_id].messages == ["reconcile: retry after FAILED"] * 3


def test_reconcile_records_missed_payments_and_ignores_billing_ones(engine: Engine) -> None:
    prefect = FakePrefect()
    stripe = QuietStripe([{"id": "pi_Missed"}, {"id": "pi_Billing", "invoice": "in_1"}])
    report = reconcile_now(services(engine, stripe), prefect=prefect)
    assert report.orders_recorded == ["pi_Missed"] and report.payments_ignored == ["pi_Billing"]
    assert report.orders_started == ["pi_Missed"] and prefect.run_of("pi_Missed")
    again = reconcile_now(services(engine, stripe), prefect=prefect)
    assert again.orders_recorded == again.payments_ignored == again.orders_started == []


def test_replay_retry_is_forced_through_the_adapter() -> None:
    prefect = FakePrefect()
    run_id = prefect.create_run("process-order/orderpipe", parameters={"order_id": "pi_R"}, idempotency_key="pi_R",
                                name="order-pi_R", tags=[])
    prefect.finish(run_id, "RUNNING", runs=1)
    assert retry_flow_run(run_id, "not forced", prefect=prefect) == (False, 1)
    assert retry_flow_run(run_id, "replay requested from the CLI", force=True, prefect=prefect) == (True, 1)
