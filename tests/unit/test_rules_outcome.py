"""How an order's run ends (orderpipe/orders/outcome.py): pure, no Prefect."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from orderpipe.errors import NeedsAttention, PermanentError, TransientError
from orderpipe.orders import outcome
from orderpipe.states import STEPS, OrderState, Step, StepState

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
ALL_DONE = {s: StepState.COMPLETED for s in STEPS}


def test_no_errors_completes_with_no_alert_and_a_fulfilled_callback() -> None:
    ended = outcome.decide("pi_1", errors={}, failures={}, steps=ALL_DONE, now=NOW)
    assert ended.state == OrderState.COMPLETED and ended.last_error is None
    assert ended.callback_status == "fulfilled" and ended.failed_step is None
    assert ended.alerts == [] and ended.failure_message is None


def test_a_non_critical_failure_fails_the_run_with_one_alert_and_the_rest_done() -> None:
    steps = {**ALL_DONE, Step.CRM: StepState.FAILED}
    ended = outcome.decide("pi_1", errors={Step.CRM: "zoho 503"}, failures={Step.CRM: TransientError("HTTP 503")},
                           steps=steps, now=NOW)
    assert Step.CRM in outcome.NON_CRITICAL and outcome.email_blocked_by({Step.CRM: "x"}) == []
    assert ended.state == OrderState.FAILED and ended.callback_status == "failed" and ended.failed_step == Step.CRM
    [alert] = ended.alerts
    assert alert.kind == "step_failed" and alert.step == Step.CRM
    assert alert.dedupe_key == "step_failed:pi_1:crm:TransientError/5xx"
    assert ended.last_error == "crm: zoho 503" and ended.failure_message == "order pi_1: crm failed: zoho 503"


def test_email_waits_for_shipment_and_invoice() -> None:
    assert outcome.email_blocked_by({Step.SHIPMENT: "x", Step.CRM: "y"}) == [Step.SHIPMENT]
    assert outcome.email_blocked_by({Step.INVOICE: "x", Step.SHIPMENT: "y"}) == [Step.SHIPMENT, Step.INVOICE]
    assert outcome.email_blocked_by({Step.PRODUCTION_LOG: "x"}) == []


def test_an_unknown_vendor_outcome_needs_attention_and_alerts_as_such() -> None:
    steps = {**ALL_DONE, Step.SHIPMENT: StepState.NEEDS_ATTENTION, Step.EMAIL: StepState.PENDING}
    ended = outcome.decide("pi_1", errors={Step.SHIPMENT: "PostNord answer lost"},
                           failures={Step.SHIPMENT: NeedsAttention("answer lost")}, steps=steps, now=NOW)
    assert ended.state == OrderState.NEEDS_ATTENTION
    [alert] = ended.alerts
    assert alert.kind == "needs_attention" and "needs attention" in alert.message
    assert alert.dedupe_key == "needs_attention:pi_1:shipment:NeedsAttention"


def test_fetch_failed_ends_the_run_failed_before_any_other_step() -> None:
    ended = outcome.fetch_failed("pi_1", "Stripe 404", PermanentError("HTTP 404"), NOW)
    assert ended.state == OrderState.FAILED and ended.failed_step == Step.FETCH_ORDER
    assert ended.last_error == "fetch_order: Stripe 404"
    assert ended.failure_message == "order pi_1: fetch_order failed: Stripe 404"
    assert [a.dedupe_key for a in ended.alerts] == ["step_failed:pi_1:fetch_order:PermanentError/4xx"]


def test_run_error_alert_keys_on_the_class_not_the_text() -> None:
    a = outcome.run_error_alert("pi_1", RuntimeError("db gone\nrequest id 123"), NOW)
    b = outcome.run_error_alert("pi_1", RuntimeError("db gone, request id 456"), NOW)
    assert a.dedupe_key == b.dedupe_key == "run_error:pi_1:flow:RuntimeError"
    assert a.message.endswith("RuntimeError: db gone") and a.step == "flow"


def test_status_line_for_the_production_log() -> None:
    steps = {**ALL_DONE, Step.CRM: StepState.FAILED, Step.EMAIL: StepState.PENDING}
    assert outcome.status_line(steps, {Step.CRM: "x"}) == (
        "completed: fetch_order, production_log, shipment, invoice; failed: crm")
    assert outcome.status_line(ALL_DONE, {}) == "completed: " + ", ".join(STEPS)


step_names = st.sampled_from([s for s in STEPS if s != Step.FETCH_ORDER])
step_states = st.sampled_from(list(StepState))
texts = st.text(min_size=1, max_size=40)


@given(errors=st.dictionaries(step_names, texts, max_size=5), states=st.dictionaries(step_names, step_states),
       request_id=st.text(max_size=20))
def test_state_alerts_and_keys_follow_the_errors(errors: dict[str, str], states: dict[str, str],
                                                 request_id: str) -> None:
    steps = {**ALL_DONE, **states}
    ended = outcome.decide("pi_X", errors=errors, failures={}, steps=steps, now=NOW)
    assert (ended.state == OrderState.COMPLETED) == (not errors)
    assert (ended.failure_message is None) == (not errors)
    assert [a.step for a in ended.alerts] == list(errors)  # one alert per failed step, in order
    if errors:
        assert ended.failed_step == next(iter(errors))
        attention = any(steps[s] == StepState.NEEDS_ATTENTION for s in errors)
        assert ended.state == (OrderState.NEEDS_ATTENTION if attention else OrderState.FAILED)
    # the dedupe key never holds the error's text: a re-drive with another request id alerts nobody again
    again = outcome.decide("pi_X", errors={k: v + request_id for k, v in errors.items()}, failures={},
                           steps=steps, now=NOW)
    assert [a.dedupe_key for a in again.alerts] == [a.dedupe_key for a in ended.alerts]


def test_a_database_away_outside_the_steps_is_tried_again_for_about_90_s_then_alerted() -> None:
    from sqlalchemy.exc import DataError, OperationalError

    from orderpipe.orders.outcome import OUTSIDE_RETRY_DELAYS, outside_retry_delay

    away = OperationalError("UPDATE orders ...", {}, Exception("connection refused"))
    delays = [outside_retry_delay(away, n) for n in range(len(OUTSIDE_RETRY_DELAYS) + 1)]
    assert delays[:-1] == list(OUTSIDE_RETRY_DELAYS) and delays[-1] is None
    assert 60 <= sum(OUTSIDE_RETRY_DELAYS) <= 110  # finished within the contract's 2 minutes
    assert outside_retry_delay(DataError("INSERT ...", {}, Exception("value too long")), 0) is None
    assert outside_retry_delay(KeyError("email"), 0) is None
