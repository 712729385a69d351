"""Run orderpipe's flows in-process against a real Prefect server, with one test's settings."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from prefect.settings import (
    PREFECT_API_URL,
    PREFECT_LOCAL_STORAGE_PATH,
    PREFECT_LOGGING_LEVEL,
    temporary_settings,
)

from orderpipe.bootstrap import process_services
from orderpipe.stripe_standin import DEFAULT_API_KEY, StandinStore, sample_orders


@contextmanager
def flow_settings(monkeypatch: pytest.MonkeyPatch, api_url: str, data_dir: Path, db_url: str,
                  stripe_base: str, **env: str) -> Iterator[None]:
    """Point orderpipe (env) and Prefect (temporary settings) at this test's world."""
    values = {"DATABASE_URL": db_url, "ORDERPIPE_DATA_DIR": str(data_dir), "STRIPE_API_BASE": stripe_base,
              "STRIPE_API_KEY": DEFAULT_API_KEY, "STRIPE_WEBHOOK_SECRET": "whsec_flow_tests", **env}
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    process_services.cache_clear()
    with temporary_settings(updates={PREFECT_API_URL: api_url,
                                     PREFECT_LOCAL_STORAGE_PATH: str(data_dir / "prefect-results"),
                                     PREFECT_LOGGING_LEVEL: "WARNING"}):
        try:
            yield
        finally:
            process_services.cache_clear()


def add_order_copy(store: StandinStore, source_id: str, new_id: str, *, drop_email: bool = False,
                   drop_shipping: bool = False) -> str:
    """A copy of a sample order under a new PaymentIntent id, optionally missing data."""
    sample = next(s for s in sample_orders() if s.order_id == source_id)
    pi = copy.deepcopy(sample.payment_intent)
    pi["id"] = new_id
    session = copy.deepcopy(sample.session)
    customer = copy.deepcopy(sample.customer)
    if session is not None:
        session["id"] = "cs_" + new_id.removeprefix("pi_")
        session["payment_intent"] = new_id
        if drop_email:
            session["customer_details"]["email"] = None
            session["customer_email"] = None
        if drop_shipping:
            session["collected_information"] = {"shipping_details": None}
            session.pop("shipping_details", None)
    if drop_email:
        pi["receipt_email"] = None
        session_customer = None
        customer = session_customer
        if session is not None:
            session["customer"] = None
        pi["customer"] = None
    if drop_shipping:
        pi["shipping"] = None
    return store.add_order(pi, session, sample.line_items, customer, sample.products)
