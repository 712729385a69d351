"""What every order step shares: retries with backoff and jitter, the per-order cache key,
the retry condition (permanent errors are not retried), step-state bookkeeping, and the
audit trail in the Prefect UI (task runs named ``<step> · <order id>``, one business line
logged per outcome, and what a person can do when a step failed)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from prefect.cache_policies import NO_CACHE, CachePolicy
from prefect.context import TaskRunContext
from prefect.exceptions import MissingContextError
from prefect.logging import get_run_logger
from prefect.tasks import exponential_backoff
from sqlalchemy.exc import DataError

from orderpipe import audit
from orderpipe.bootstrap import Services
from orderpipe.errors import NeedsAttention, PermanentError, StepError, TransientError
from orderpipe.order import Order
from orderpipe.orders.ledger import set_step
from orderpipe.states import Step, StepState
from orderpipe.step_locks import OrderStepLocks

MAX_RETRY_AFTER = 60.0
# DataError: a value the database refuses (a name longer than its column...) never fits on a retry.
PERMANENT_TYPES: tuple[type[BaseException], ...] = (PermanentError, ValueError, TypeError, KeyError, DataError)


def order_step_key(ctx: Any, params: dict[str, Any]) -> str:
    """Cache key: step name + order id (the step name keeps steps apart: INPUTS alone collides).

    The task's *name* (a Step value), never its run name: results cached under
    ``<step>-order-<id>`` before task runs were renamed still replay."""
    order = params.get("order")
    order_id = order.order_id if order is not None else params["order_id"]
    return f"{ctx.task.name}-order-{order_id}"


def retry_unless_permanent(_task: Any, _task_run: Any, state: Any) -> bool:
    exc = state.data
    return not isinstance(exc, PERMANENT_TYPES)


_BACKOFF = dict(
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=1),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_unless_permanent,
)
# Steps that must run every time (reads, status updates, notifications): no cache at all.
# Without this they would inherit the flow's persisted results and Prefect's DEFAULT policy,
# which caches per flow-run id: a retried run would replay a stale Stripe read.
RETRY = dict(_BACKOFF, cache_policy=NO_CACHE)
# SERIALIZABLE with a lock per order and step: two processes (a replay beside a live run,
# two workers) never run the same step of an order at once; the second waits, then hits
# the first one's cached result (orderpipe/step_locks.py).
CACHED_STEP = dict(
    _BACKOFF,
    cache_policy=CachePolicy.from_cache_key_fn(order_step_key).configure(
        isolation_level="SERIALIZABLE", lock_manager=OrderStepLocks()),
    persist_result=True,
    cache_expiration=timedelta(days=90),
)


def run_name(step: str) -> Callable[..., str]:
    """``task_run_name`` for a step: ``crm · pi_3Abc...`` instead of ``crm-6e1``.
    Prefect passes the call's parameters; the name does not enter the cache key."""

    def name(parameters: dict[str, Any]) -> str:
        return audit.task_run_name(step, parameters)

    name.__name__ = f"{step}_run_name"
    return name


def step_task(step: Step, policy: dict[str, Any]) -> dict[str, Any]:
    """``@task`` arguments of a step: its name (the Step value, part of the cache key), its run
    name and its policy (CACHED_STEP or RETRY)."""
    return dict(policy, name=step.value, task_run_name=run_name(step))


def run_logger() -> logging.Logger | logging.LoggerAdapter[logging.Logger]:
    """Prefect's run logger (its lines are the Logs tab of the order's flow run), or a plain
    logger when called outside a run (unit tests)."""
    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("orderpipe.steps")


def log_outcome(step: str, result: Any, order: Order | None = None) -> None:
    """The step's business outcome, one line, in the run's logs."""
    run_logger().info("%s: %s", step, audit.outcome_line(step, result, order))


def _retries_left(exc: BaseException) -> bool:
    """Whether Prefect will run this task again after exc (same rule as retry_unless_permanent)."""
    if isinstance(exc, PERMANENT_TYPES):
        return False
    ctx = TaskRunContext.get()
    if ctx is None:
        return False
    return ctx.task_run.run_count <= ctx.task.retries


def _log_failure(step: str, order_id: str, exc: BaseException) -> None:
    message = str(exc) or type(exc).__name__
    if _retries_left(exc):
        ctx = TaskRunContext.get()
        attempt = f" {ctx.task_run.run_count} of {ctx.task.retries + 1}" if ctx else ""
        run_logger().warning("%s: attempt%s failed for order %s, retrying: %s", step, attempt, order_id, message)
        return
    permanent = isinstance(exc, PERMANENT_TYPES)
    run_logger().error("%s", audit.failure_line(step, order_id, message, permanent=permanent))


@contextmanager
def tracked(svc: Services, order_id: str, step: str) -> Iterator[None]:
    """Record the step's state for `orderpipe status`; honour a vendor's Retry-After hint; log a
    failure with what a person can do once the retries are used up."""
    set_step(svc.engine, order_id, step, StepState.RUNNING)
    try:
        yield
    except NeedsAttention as exc:
        # Outcome unknown, no lookup: stopped, never retried; the flow alerts a person.
        set_step(svc.engine, order_id, step, "needs_attention", str(exc))
        raise
    except DataError as exc:
        reason = str(exc.orig if exc.orig is not None else exc).strip().splitlines()[0][:300]
        set_step(svc.engine, order_id, step, "failed", f"bad data: {reason}")
        raise PermanentError(f"order {order_id}, step {step}: a value of the order does not fit orderpipe's "
                             f"database ({reason}); fix the order data, then replay") from None
    except TransientError as exc:
        set_step(svc.engine, order_id, step, StepState.FAILED, str(exc))
        _log_failure(step, order_id, exc)
        if exc.retry_after:
            time.sleep(min(exc.retry_after, MAX_RETRY_AFTER))
        raise
    except BaseException as exc:
        if not isinstance(exc, StepError):  # not a vendor's or the order's known failure: keep the trace
            logging.getLogger("orderpipe.steps").exception("order %s: step %s raised", order_id, step)
        set_step(svc.engine, order_id, step, StepState.FAILED, str(exc) or type(exc).__name__)
        if isinstance(exc, Exception):  # not on KeyboardInterrupt / a cancelled run
            _log_failure(step, order_id, exc)
        raise
    set_step(svc.engine, order_id, step, StepState.COMPLETED)
