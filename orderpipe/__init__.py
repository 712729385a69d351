"""orderpipe: a paid Stripe order in, a fulfilled order out."""

__version__ = "0.1.0"
