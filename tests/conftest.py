"""Fixtures shared by every test layer: temporary data dirs and migrated databases."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from orderpipe.db import get_engine, migrate

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_SERVER_ALLOW_EPHEMERAL_MODE", "false")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def sqlite_url(data_dir: Path) -> str:
    url = f"sqlite:///{data_dir / 'orderpipe.db'}"
    migrate(url)
    return url


@pytest.fixture
def engine(sqlite_url: str) -> Engine:
    return get_engine(sqlite_url)


def _pg_base_url() -> str | None:
    return os.environ.get("ORDERPIPE_TEST_DATABASE_URL") or None


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, migrated Postgres database per test (dropped afterwards).

    Skipped, loudly, when ORDERPIPE_TEST_DATABASE_URL is not set."""
    base = _pg_base_url()
    if not base:
        pytest.skip("POSTGRES TESTS SKIPPED: set ORDERPIPE_TEST_DATABASE_URL=postgresql+psycopg://... to run them")
    name = f"orderpipe_t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    try:
        migrate(url)
        yield url
    finally:
        from orderpipe.db import _engines

        eng = _engines.pop(url, None)
        if eng is not None:
            eng.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def any_db_url(request: pytest.FixtureRequest) -> str:
    """Runs a test once on SQLite and once on Postgres."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    return request.getfixturevalue("postgres_url")
