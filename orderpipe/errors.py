"""Error classes every step uses to say whether retrying can help."""

from __future__ import annotations


class StepError(Exception):
    """Base class for failures of a business step."""


class TransientError(StepError):
    """Timeouts, connection errors, 429 and 5xx: retrying later may succeed.

    ``retry_after`` (seconds) carries a vendor's Retry-After hint when it gave one.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(StepError):
    """4xx, validation and in-band vendor failures: retrying cannot fix it; a person must look."""


class OrderDataError(PermanentError):
    """The order as read from Stripe lacks something a step needs (email, shipping address...)."""


class AnswerLost(TransientError):
    """The request may have reached the vendor (it was sent), but its answer never came:
    read timeout, connection cut or reset after sending. For a read or an idempotent write a
    retry is safe; a connector making a non-idempotent write must not retry it blindly."""


class NeedsAttention(PermanentError):
    """A vendor write whose outcome is unknown and cannot be looked up (or whose outcome
    could not be recorded): the step stops, is marked ``needs_attention`` and a person is
    alerted with ``what_to_check``. Never retried automatically: retrying risks a duplicate."""

    def __init__(self, message: str, *, what_to_check: str = "") -> None:
        super().__init__(message + (f" -- check: {what_to_check}" if what_to_check else ""))
        self.what_to_check = what_to_check


def failure_kind(exc: BaseException | str | None) -> str:
    """The kind of a failure for alert dedupe: its class and, for vendor HTTP answers, the
    status family (``PermanentError/4xx``); never the text (which carries request ids)."""
    import re

    if exc is None:
        return "unknown"
    text = exc if isinstance(exc, str) else str(exc)
    name = "error" if isinstance(exc, str) else type(exc).__name__
    m = re.search(r"HTTP (\d)\d\d", text)
    return f"{name}/{m.group(1)}xx" if m else name
