"""The dispatcher when Prefect is unreachable: the order stays pending, nothing is lost."""

from __future__ import annotations

from pathlib import Path

from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

from orderpipe import ledger
from orderpipe.db import aware, get_engine
from orderpipe.dispatcher import Dispatcher
from orderpipe.wakeup import Listener, wake_after_commit, wake_file
from orderpipe.tables import utcnow
from tests.conftest import free_port


def test_prefect_down_keeps_order_pending_with_backoff(sqlite_url: str, data_dir: Path) -> None:
    engine = get_engine(sqlite_url)
    assert ledger.record_missing_order(engine, "pi_PrefectDown", source="test")
    with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api",
                                     PREFECT_CLIENT_MAX_RETRIES: 0}):
        started = Dispatcher(engine).dispatch_once()
    assert started == []
    row = ledger.get_order(engine, "pi_PrefectDown")
    assert row is not None and row.dispatch == "pending" and row.flow_run_id is None
    assert row.dispatch_attempts == 1 and row.last_error
    assert aware(row.next_dispatch_at) > utcnow()  # backed off, tried again later
    assert ledger.due_for_dispatch(engine) == []  # not before its backoff expires


def test_sqlite_wake_file_wakes_the_listener(sqlite_url: str, data_dir: Path) -> None:
    engine = get_engine(sqlite_url)
    listener = Listener(engine, data_dir)
    assert listener.poll() is False
    wake_after_commit(engine, data_dir)
    assert wake_file(data_dir).exists()
    assert listener.poll() is True and listener.poll() is False
