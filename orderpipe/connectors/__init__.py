"""Adapters to the outside world. ``base`` holds the interfaces, the rest one module each."""
