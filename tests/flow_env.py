"""Run orderpipe's flows in-process against a real Prefect server, with one test's settings."""

from __future__ import annotations

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
from orderpipe.stripe_api.standin import DEFAULT_API_KEY
from orderpipe.stripe_api.standin.samples import clone_order as add_order_copy  # noqa: F401


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
