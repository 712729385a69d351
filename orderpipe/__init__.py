"""orderpipe: a paid Stripe order in, a fulfilled order out."""

from orderpipe import _moved

__version__ = "0.1.0"

_moved.install()  # old module paths (before the domain packages) stay importable
