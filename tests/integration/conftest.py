"""Fixtures the in-process flow tests share."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.prefect_server import flow_test_server


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Prefect server (Postgres-backed when available) for every in-process flow test of
    the session: each starts in about 20 s. Tests tell their runs apart by order id."""
    with flow_test_server(tmp_path_factory.mktemp("prefect")) as api:
        yield api
