"""The Stripe stand-in on a free port in a background thread, for any test that needs Stripe.

    from tests.standins.stripe import running_standin

    with running_standin() as (base_url, store):
        reader = StripeReader(STANDIN_KEY, base_url)

or use the ``stripe_standin`` fixture (import it into a test module or conftest).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from orderpipe.stripe_api.standin import DEFAULT_API_KEY, StandinServer, StandinStore, seed_store

STANDIN_KEY = DEFAULT_API_KEY


@contextmanager
def running_standin(seed: bool = True, *, now: int | None = None, api_key: str = DEFAULT_API_KEY,
                    accept_any_test_key: bool = True) -> Iterator[tuple[str, StandinStore]]:
    """Yield (base_url, store); ``base_url`` is the host only, as STRIPE_API_BASE expects."""
    store = StandinStore(api_key=api_key, accept_any_test_key=accept_any_test_key)
    if seed:
        seed_store(store, now)
    with StandinServer(store) as server:
        yield server.url, store


@pytest.fixture
def stripe_standin() -> Iterator[tuple[str, StandinStore]]:
    """A seeded stand-in per test: (base_url, store)."""
    with running_standin(seed=True) as pair:
        yield pair
