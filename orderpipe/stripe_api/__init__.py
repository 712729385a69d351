"""Stripe: reading an order back from the API (``reader``), turning Stripe objects into an
``Order`` (``normalise``), and the local Stripe API stand-in for tests and the demo (``standin``).
"""
