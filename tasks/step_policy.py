"""What every order step shares: retries with backoff and jitter, the per-order cache key,
the retry condition (permanent errors are not retried) and step-state bookkeeping."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff
from sqlalchemy.exc import DataError

from orderpipe.bootstrap import Services
from orderpipe.errors import NeedsAttention, PermanentError, StepError, TransientError
from orderpipe.ledger import set_step

MAX_RETRY_AFTER = 60.0
# DataError: a value the database refuses (a name longer than its column...) never fits on a retry.
PERMANENT_TYPES: tuple[type[BaseException], ...] = (PermanentError, ValueError, TypeError, KeyError, DataError)


def order_step_key(ctx: Any, params: dict[str, Any]) -> str:
    """Cache key: step name + order id (the step name keeps steps apart: INPUTS alone collides)."""
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
CACHED_STEP = dict(
    _BACKOFF,
    cache_key_fn=order_step_key,
    persist_result=True,
    cache_expiration=timedelta(days=90),
)


@contextmanager
def tracked(svc: Services, order_id: str, step: str) -> Iterator[None]:
    """Record the step's state for `orderpipe status`; honour a vendor's Retry-After hint."""
    set_step(svc.engine, order_id, step, "running")
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
        set_step(svc.engine, order_id, step, "failed", str(exc))
        if exc.retry_after:
            time.sleep(min(exc.retry_after, MAX_RETRY_AFTER))
        raise
    except BaseException as exc:
        if not isinstance(exc, StepError):  # not a vendor's or the order's known failure: keep the trace
            logging.getLogger("orderpipe.steps").exception("order %s: step %s raised", order_id, step)
        set_step(svc.engine, order_id, step, "failed", str(exc) or type(exc).__name__)
        raise
    set_step(svc.engine, order_id, step, "completed")
