"""Reconciliation's choices (orderpipe/orders/reconcile_rules.py): pure, no Stripe, no Prefect."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from orderpipe.orders import reconcile_rules as rules
from orderpipe.orders.prefect_api import RunInfo
from orderpipe.orders.reconcile_rules import PaymentAction, RunAction
from orderpipe.states import OrderState, Step, StepState

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_only_unknown_events_are_recorded() -> None:
    events = [{"id": "evt_1"}, {"id": "evt_2"}, {"id": "evt_3"}]
    assert [e["id"] for e in rules.new_events(events, {"evt_2"})] == ["evt_1", "evt_3"]


def test_payment_intents_become_orders_unless_known_or_billing() -> None:
    record = rules.payment_intent_decision(has_order=False, already_seen=False, billing_invoice=None)
    assert record.action == PaymentAction.RECORD
    for has_order, seen in ((True, True), (False, True)):
        assert rules.payment_intent_decision(has_order=has_order, already_seen=seen,
                                             billing_invoice="in_1").action == PaymentAction.SKIP
    ignored = rules.payment_intent_decision(has_order=False, already_seen=False, billing_invoice="in_1")
    assert ignored.action == PaymentAction.IGNORE and "in_1" in ignored.reason and "Billing" in ignored.reason
    assert rules.skip_event_id("pi_1") == "reconcile:pi_1"


@given(state=st.sampled_from(["FAILED", "CRASHED", "COMPLETED", "RUNNING", "SCHEDULED", "PENDING", None]),
       runs=st.integers(min_value=0, max_value=20))
def test_failed_runs_are_retried_three_times_then_given_up(state: str | None, runs: int) -> None:
    action = rules.run_decision(RunInfo(id="r", state_type=state, run_count=runs))
    if state not in ("FAILED", "CRASHED"):
        assert action == RunAction.LEAVE
    else:
        assert action == (RunAction.RETRY if runs <= rules.MAX_AUTO_RETRIES else RunAction.GIVE_UP)


def test_gave_up_alert_once_per_order_and_state() -> None:
    run = RunInfo(id="r", state_type="FAILED", run_count=4)
    a = rules.gave_up_alert("pi_1", run, "shipment: PostNord 500", NOW)
    assert a.dedupe_key == "gave_up:pi_1:reconcile:FAILED" and a.kind == "gave_up" and a.step == "reconcile"
    assert "after 4 runs ended FAILED" in a.message and "shipment: PostNord 500" in a.message
    assert "`orderpipe replay pi_1`" in a.message
    assert "none recorded" in rules.gave_up_alert("pi_1", run, None, NOW).message
    assert rules.retry_message(run) == "reconcile: retry after FAILED"


def test_callback_of_a_finished_order() -> None:
    steps = {Step.FETCH_ORDER: StepState.COMPLETED, Step.SHIPMENT: StepState.FAILED, Step.EMAIL: StepState.FAILED}
    assert rules.callback_for(OrderState.COMPLETED, steps) == rules.Callback("fulfilled", None)
    assert rules.callback_for(OrderState.FAILED, steps) == rules.Callback("failed", Step.SHIPMENT)
    assert rules.callback_for(OrderState.FAILED, {}) == rules.Callback("failed", None)
