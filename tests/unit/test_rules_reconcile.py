"""Reconciliation's choices (orderpipe/orders/reconcile_rules.py): pure, no Stripe, no Prefect."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from orderpipe.orders import reconcile_rules as rules
from orderpipe.orders.prefect_api import RunInfo
from orderpipe.orders.reconcile_rules import PaymentAction, RunAction
from orderpipe.states import EventStatus, OrderState, Step, StepState

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_only_unknown_events_are_recorded() -> None:
    events = [{"id": "evt_1"}, {"id": "evt_2"}, {"id": "evt_3"}]
    assert [e["id"] for e in rules.new_events(events, {"evt_2"})] == ["evt_1", "evt_3"]


def _dispute_event(event_id: str, created: int, event_type: str = "charge.dispute.created",
                   dispute_id: str = "du_1") -> dict[str, Any]:
    return {"id": event_id, "type": event_type, "created": created, "data": {"object": {"id": dispute_id}}}


def test_missed_dispute_events_are_the_unknown_ones_oldest_first() -> None:
    listed = [  # as Stripe lists them: newest first, two in the same second
        _dispute_event("evt_closed", 300, "charge.dispute.closed"),
        _dispute_event("evt_updated_b", 200, "charge.dispute.updated"),
        _dispute_event("evt_updated_a", 200, "charge.dispute.updated"),
        _dispute_event("evt_known", 150, "charge.dispute.funds_withdrawn"),
        _dispute_event("evt_created", 100),
        _dispute_event("evt_refund", 120, "refund.created"),  # not a dispute event: never recorded here
    ]
    missed = rules.missed_dispute_events(listed, {"evt_known"})
    assert [e["id"] for e in missed] == ["evt_created", "evt_updated_a", "evt_updated_b", "evt_closed"]
    assert rules.missed_dispute_events(listed, {e["id"] for e in listed}) == []
    assert rules.missed_dispute_events([], set()) == []


@given(st.lists(st.tuples(st.integers(0, 5), st.booleans()), max_size=12))
def test_missed_dispute_events_keep_every_unknown_event_once_in_time_order(spec: list[tuple[int, bool]]) -> None:
    listed = sorted(({"id": f"evt_{i}", "type": "charge.dispute.updated", "created": created,
                      "data": {"object": {"id": "du_1"}}} for i, (created, _) in enumerate(spec)),
                    key=lambda e: -e["created"])
    known = {f"evt_{i}" for i, (_, is_known) in enumerate(spec) if is_known}
    missed = rules.missed_dispute_events(listed, known)
    assert sorted(e["id"] for e in missed) == sorted(e["id"] for e in listed if e["id"] not in known)
    assert [e["created"] for e in missed] == sorted(e["created"] for e in missed)


def test_dispute_id_of_an_event() -> None:
    assert rules.dispute_id_of(_dispute_event("evt_1", 1, dispute_id="du_9")) == "du_9"
    for broken in ({}, {"data": None}, {"data": {"object": "du_9"}}, {"data": {"object": {"id": 7}}},
                   {"data": {"object": {"id": ""}}}):
        assert rules.dispute_id_of(broken) is None


def test_a_missed_dispute_event_counts_when_it_changed_the_ledger() -> None:
    assert rules.dispute_recorded(EventStatus.ACCEPTED, new_event=True)  # new dispute, or lost: its refund row
    assert rules.dispute_recorded(EventStatus.DUPLICATE, new_event=True)  # a newer state of a known dispute
    assert not rules.dispute_recorded(EventStatus.IGNORED, new_event=True)  # an older (or the same) state
    for status in EventStatus:  # the receiver recorded the event first: not reconcile's
        assert not rules.dispute_recorded(status, new_event=False)


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
