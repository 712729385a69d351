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
