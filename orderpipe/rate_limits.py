"""Vendor rate limits shared by every run and worker: Prefect global concurrency limits.

`orderpipe up` creates them at start-up (`ensure_rate_limits`); connectors call the
throttle with the limit's name before each request.
"""

from __future__ import annotations

import logging

log = logging.getLogger("orderpipe.rate_limits")

# name -> (limit, slot decay per second): a token bucket of `limit` requests refilled at `decay`/s.
RATE_LIMITS: dict[str, tuple[int, float]] = {
    "airtable-api": (5, 5.0),  # Airtable: 5 requests/s per base
    "zoho-api": (10, 1.6),  # Zoho CRM: credits per minute; ~100 calls/min is a safe floor
    "resend-api": (2, 2.0),  # Resend: 2 requests/s by default
    "telegram-api": (1, 1.0),  # Telegram: about 1 message/s per chat
}


def prefect_throttle(name: str) -> None:
    """Take one slot of the named Prefect rate limit (never blocks forever; warns if missing)."""
    from prefect.concurrency.sync import rate_limit

    rate_limit(name, occupy=1, timeout_seconds=120, strict=False)


def ensure_rate_limits() -> None:
    """Create (or update) the global concurrency limits on the Prefect server."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        for name, (limit, decay) in RATE_LIMITS.items():
            try:
                client.read_global_concurrency_limit_by_name(name)
                client.update_global_concurrency_limit(
                    name, GlobalConcurrencyLimitUpdate(limit=limit, slot_decay_per_second=decay, active=True)
                )
            except ObjectNotFound:
                try:
                    client.create_global_concurrency_limit(
                        GlobalConcurrencyLimitCreate(name=name, limit=limit, slot_decay_per_second=decay)
                    )
                except ObjectAlreadyExists:
                    pass
