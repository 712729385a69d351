"""A real `prefect server start` for tests: free port, temporary PREFECT_HOME, stopped after."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from orderpipe.prefect_env import SERVER_ENV
from tests.conftest import free_port

QUIET_ENV = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false",
    "PREFECT_LOGGING_LEVEL": "WARNING",
    "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    "PREFECT_API_LOG_RETRYABLE_ERRORS": "true",
}


@contextmanager
def prefect_server(home: Path, database_url: str | None = None) -> Iterator[str]:
    """Yield the API URL of a fresh Prefect server (SQLite under `home`, or `database_url`)."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **QUIET_ENV, **SERVER_ENV, "PREFECT_HOME": str(home)}
    env.pop("PREFECT_API_URL", None)
    if database_url:
        env["PREFECT_API_DATABASE_CONNECTION_URL"] = database_url
    log = open(home / "server.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                             "--port", str(port), "--no-ui"], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"prefect server exited: {(home / 'server.log').read_text()[-2000:]}")
            try:
                if httpx.get(api + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("prefect server did not start in 120 s")
            time.sleep(0.2)
        yield api
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@contextmanager
def prefect_database() -> Iterator[str | None]:
    """A fresh Postgres database for a test Prefect server when the suite has Postgres, else None.

    Prefect's SQLite backend answers concurrent writes (task runs, rate-limit slots) with
    "database is locked" -> 503 -> client back-off of 2 s, 4 s, ...; on Postgres the same flows
    run several times faster. orderpipe's own database is chosen per test, independently."""
    base = os.environ.get("ORDERPIPE_TEST_DATABASE_URL")
    if not base:
        yield None
        return
    name = f"prefect_t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield make_url(base).set(drivername="postgresql+asyncpg", database=name).render_as_string(
                hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


@contextmanager
def flow_test_server(home: Path) -> Iterator[str]:
    """A Prefect server for in-process flow tests (Postgres-backed when available), with the
    vendor rate limits `orderpipe up` creates; queued logs are shipped before it stops."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from orderpipe.rate_limits import ensure_rate_limits

    with prefect_database() as database_url, prefect_server(home, database_url) as api:
        with temporary_settings(updates={PREFECT_API_URL: api}):
            ensure_rate_limits()
        try:
            yield api
        finally:
            # Ship queued run logs and events while the server is still up: otherwise the
            # process spends its exit (about 70 s) retrying them against a stopped server.
            with temporary_settings(updates={PREFECT_API_URL: api}):
                APILogWorker.drain_all(timeout=10, at_exit=False)
                EventsWorker.drain_all(timeout=10, at_exit=False)
