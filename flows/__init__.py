"""Prefect flows: process-order (one run per order) and reconcile (scheduled backstop)."""
