"""A local Stripe API stand-in for tests and ``make demo`` (see ``server.py`` for what it serves)."""

from orderpipe.stripe_api.standin.samples import SAMPLE_ORDER_IDS, sample_orders, seed_store
from orderpipe.stripe_api.standin.server import StandinServer, create_app
from orderpipe.stripe_api.standin.store import DEFAULT_API_KEY, StandinStore

__all__ = [
    "DEFAULT_API_KEY", "SAMPLE_ORDER_IDS", "StandinServer", "StandinStore", "create_app", "sample_orders",
    "seed_store",
]
