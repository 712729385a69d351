"""Vendor rate limits shared by every run and worker: Prefect global concurrency limits.

`orderpipe up` creates them at start-up (`ensure_rate_limits`); connectors call the
throttle with the limit's name before each request.
"""

from __future__ import annotations

import logging
import math

log = logging.getLogger("orderpipe.rate_limits")

# name -> (limit, slot decay per second): a token bucket of `limit` requests refilled at `decay`/s.
RATE_LIMITS: dict[str, tuple[int, float]] = {
    "airtable-api": (5, 5.0),  # Airtable: 5 requests/s per base
    "zoho-api": (10, 1.6),  # Zoho CRM: credits per minute; ~100 calls/min is a safe floor
    "resend-api": (2, 2.0),  # Resend: 2 requests/s by default
    "telegram-api": (1, 1.0),  # Telegram: about 1 message/s per chat
}


def parse_overrides(text: str) -> dict[str, tuple[int, float]]:
    """``ORDERPIPE_RATE_LIMITS``: ``zoho-api=300/min,airtable-api=5/s`` -> name -> (limit, decay).

    The bucket refills at the given rate and holds 6 s of it (at least 1 slot), as the
    defaults do. Only the names above; a typo is an error, not an ignored setting."""
    out: dict[str, tuple[int, float]] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        name, sep, rate = item.partition("=")
        name = name.strip()
        if not sep or name not in RATE_LIMITS:
            raise ValueError(f"{item!r}: expected <name>=<n>/s or <name>=<n>/min with a name among "
                             f"{', '.join(sorted(RATE_LIMITS))}")
        amount, _, unit = rate.strip().partition("/")
        try:
            per_second = float(amount) / {"s": 1.0, "sec": 1.0, "min": 60.0}[unit.strip()]
        except (ValueError, KeyError):
            raise ValueError(f"{item!r}: the rate must be <n>/s or <n>/min, e.g. zoho-api=300/min") from None
        if not per_second > 0:
            raise ValueError(f"{item!r}: the rate must be more than 0")
        out[name] = (max(1, math.ceil(per_second * 6)), per_second)
    return out


def prefect_throttle(name: str) -> None:
    """Take one slot of the named Prefect rate limit (never blocks forever; warns if missing)."""
    from prefect.concurrency.sync import rate_limit

    rate_limit(name, occupy=1, timeout_seconds=120, strict=False)


def ensure_rate_limits(overrides: str = "") -> None:
    """Create (or update) the global concurrency limits on the Prefect server; ``overrides``:
    ``ORDERPIPE_RATE_LIMITS`` (a vendor plan with higher limits, or a stand-in)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        for name, (limit, decay) in (RATE_LIMITS | parse_overrides(overrides)).items():
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
