"""The dispatcher's choices (orderpipe/orders/dispatch_rules.py): pure, no database, no Prefect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from orderpipe.orders import dispatch_rules as rules
from orderpipe.orders.dispatch_rules import DispatchRow
from orderpipe.states import DispatchState

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def row(order_id: str, *, dispatch: str = DispatchState.PENDING, age_s: float = 0,
        next_in_s: float | None = None) -> DispatchRow:
    return DispatchRow(order_id=order_id, dispatch=dispatch, created_at=NOW - timedelta(seconds=age_s),
                       next_dispatch_at=None if next_in_s is None else NOW + timedelta(seconds=next_in_s))


def test_due_orders_are_pending_past_their_backoff_oldest_first() -> None:
    rows = [row("pi_new", age_s=1), row("pi_old", age_s=100), row("pi_started", dispatch=DispatchState.STARTED),
            row("pi_backing_off", age_s=500, next_in_s=5), row("pi_backoff_over", age_s=50, next_in_s=-1)]
    assert rules.due(rows, NOW, limit=10) == ["pi_old", "pi_backoff_over", "pi_new"]
    assert rules.due(rows, NOW, limit=2) == ["pi_old", "pi_backoff_over"]


def test_backoff_doubles_from_one_second_up_to_a_minute() -> None:
    assert [rules.backoff(n).total_seconds() for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert rules.backoff(1000) == rules.MAX_BACKOFF


@given(st.integers(min_value=0, max_value=10_000))
def test_backoff_never_shrinks_and_never_exceeds_the_cap(n: int) -> None:
    assert timedelta(0) < rules.backoff(n) <= rules.backoff(n + 1) <= rules.MAX_BACKOFF


def test_alert_only_after_five_minutes_of_failing() -> None:
    assert not rules.should_alert(None, NOW)
    assert not rules.should_alert(NOW - timedelta(minutes=4, seconds=59), NOW)
    assert rules.should_alert(NOW - timedelta(minutes=5), NOW)


def test_stuck_alert_names_the_deployment_and_keys_on_the_kind() -> None:
    since = NOW - timedelta(minutes=6)
    a = rules.stuck_alert("pi_1", since=since, reason="ConnectError: port 1", kind="ConnectError",
                          deployment="process-order/orderpipe", now=NOW)
    b = rules.stuck_alert("pi_1", since=since, reason="ConnectError: port 2", kind="ConnectError",
                          deployment="process-order/orderpipe", now=NOW)
    assert a.dedupe_key == b.dedupe_key == "dispatch_failing:pi_1:dispatch:ConnectError"
    assert a.kind == "dispatch_failing" and a.step == "dispatch"
    assert "cannot be started since 2026-03-01 11:54:00 UTC" in a.message and "process-order/orderpipe" in a.message


def test_failure_reason_keeps_the_first_line() -> None:
    assert rules.failure_reason(ValueError("refused\ntraceback...")) == "ValueError: refused"
    assert rules.failure_reason(ValueError()) == "ValueError: "
