"""How an order's run ends, as pure functions: which failures block what, the order's final
state, its status callback, and which alerts go out with which dedupe key.

``flows/process_order.py`` runs the steps and hands the facts (each step's error, the
exception it ended with, the steps' states in the ledger) to ``decide``; it then only acts
on the ``Outcome``: ledger state, callback, alerts, and whether the run ends Failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from orderpipe.connectors.base import Alert
from orderpipe.errors import NeedsAttention, failure_kind
from orderpipe.states import OrderState, Step, StepState

#: The email needs the tracking number and the invoice: it is not sent when either failed.
EMAIL_NEEDS: tuple[Step, ...] = (Step.SHIPMENT, Step.INVOICE)
#: Steps whose failure does not stop the others (the run still ends Failed, with one alert each).
NON_CRITICAL: frozenset[Step] = frozenset({Step.CRM, Step.PRODUCTION_LOG})

Failure = BaseException | str | None


def email_blocked_by(errors: Mapping[str, str]) -> list[Step]:
    """The failed steps the email waits for (empty: send it)."""
    return [s for s in EMAIL_NEEDS if s in errors]


def step_alert(order_id: str, step: str, error: str, *, failure: Failure = None, now: datetime,
               kind: str = "step_failed") -> Alert:
    """One alert per order, step and kind of failure: the key never holds the error's text
    (vendors put a fresh request id in it, so every re-drive would alert again)."""
    if isinstance(failure, NeedsAttention):
        kind = "needs_attention"
    what = "needs attention" if kind == "needs_attention" else "failed"
    return Alert(order_id=order_id, step=step, kind=kind,
                 dedupe_key=f"{kind}:{order_id}:{step}:{failure_kind(failure if failure is not None else error)}",
                 message=f"order {order_id}: step {step} {what}: {error}", occurred_at=now)


def run_error_alert(order_id: str, exc: BaseException, now: datetime) -> Alert:
    """A failure outside the steps (a ledger write at the start, the artifact...)."""
    text = str(exc)
    return Alert(order_id=order_id, step="flow", kind="run_error", occurred_at=now,
                 dedupe_key=f"run_error:{order_id}:flow:{failure_kind(exc)}",
                 message=f"order {order_id}: the run failed outside its steps: {type(exc).__name__}: "
                         f"{text.splitlines()[0][:300] if text else ''}")


def status_line(steps: Mapping[str, str], errors: Mapping[str, str]) -> str:
    """The production log's status of the order: what completed, what failed."""
    done = [s for s, st in steps.items() if st == StepState.COMPLETED]
    return "completed: " + ", ".join(done) + ("; failed: " + ", ".join(errors) if errors else "")


def final_state(errors: Mapping[str, str], steps: Mapping[str, str]) -> OrderState:
    """Completed when no step failed; needs_attention when a failed step's vendor write has an
    unknown outcome (never re-driven blindly: a person decides); failed otherwise."""
    if not errors:
        return OrderState.COMPLETED
    if any(steps.get(step) == StepState.NEEDS_ATTENTION for step in errors):
        return OrderState.NEEDS_ATTENTION
    return OrderState.FAILED


@dataclass(frozen=True)
class Outcome:
    state: OrderState
    last_error: str | None
    callback_status: str  # fulfilled | failed
    failed_step: str | None
    alerts: list[Alert] = field(default_factory=list)
    #: The run ends Failed with this message (None: it completes).
    failure_message: str | None = None


def decide(order_id: str, *, errors: Mapping[str, str], failures: Mapping[str, Failure],
           steps: Mapping[str, str], now: datetime) -> Outcome:
    """The end of a run in which fetch_order succeeded and the other steps ran (or were blocked)."""
    return Outcome(
        state=final_state(errors, steps),
        last_error="; ".join(f"{k}: {v}" for k, v in errors.items()) or None,
        callback_status="failed" if errors else "fulfilled",
        failed_step=next(iter(errors), None),
        alerts=[step_alert(order_id, step, error, failure=failures.get(step), now=now)
                for step, error in errors.items()],
        failure_message=(f"order {order_id}: " + "; ".join(f"{k} failed: {v}" for k, v in errors.items())
                         if errors else None),
    )


def fetch_failed(order_id: str, error: str, failure: Failure, now: datetime) -> Outcome:
    """fetch_order failed: nothing else can run (no order data)."""
    return Outcome(state=OrderState.FAILED, last_error=f"fetch_order: {error}", callback_status="failed",
                   failed_step=Step.FETCH_ORDER,
                   alerts=[step_alert(order_id, Step.FETCH_ORDER, error, failure=failure, now=now)],
                   failure_message=f"order {order_id}: fetch_order failed: {error}")


#: Seconds between tries of a run whose work outside the steps (a ledger write at its start,
#: the artifact) met the database or another service away: about 90 s in all, so a short
#: outage ends in a finished order, not in a run a person must re-drive.
OUTSIDE_RETRY_DELAYS: tuple[float, ...] = (1, 2, 4, 8, 15, 30, 30)


def outside_retry_delay(exc: BaseException, attempt: int) -> float | None:
    """Wait this long and run again (the cached steps are skipped), or None: give up and alert.

    Only for failures that pass by themselves: the database unreachable or its connection cut,
    a service answering "try again". A value the database refuses, a bug, a bad order: never."""
    from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError

    from orderpipe.db import DatabaseUnavailable
    from orderpipe.errors import TransientError

    if attempt >= len(OUTSIDE_RETRY_DELAYS):
        return None
    passing = isinstance(exc, (OperationalError, InterfaceError, DisconnectionError, DatabaseUnavailable,
                               TransientError, ConnectionError, TimeoutError)) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated)
    return OUTSIDE_RETRY_DELAYS[attempt] if passing else None
