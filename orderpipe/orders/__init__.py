"""Driving each order through its one flow run: the event and order ledger (``ledger``), refunds
and disputes in it (``refund_ledger``), the dispatcher that starts runs (``dispatcher``, woken by
``wakeup``), and reconciliation with Stripe and Prefect (``reconciliation``).
"""
