"""The dispatcher when Prefect is unreachable: the order stays pending, nothing is lost."""

from __future__ import annotations

from pathlib import Path

from prefect.settings import PREFECT_API_URL, PREFECT_CLIENT_MAX_RETRIES, temporary_settings

from orderpipe.db import aware, get_engine
from orderpipe.orders import ledger
from orderpipe.orders.dispatcher import Dispatcher
from orderpipe.orders.wakeup import Listener, wake_after_commit, wake_file
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


def test_postgres_notify_from_the_recording_transaction_wakes_a_listener(postgres_url: str, data_dir: Path) -> None:
    """A receiver on another machine wakes every worker's dispatcher without a shared disk."""
    engine = get_engine(postgres_url)
    listener = Listener(engine, data_dir / "elsewhere")  # a data dir the receiver never touches
    assert listener.fileno() is not None and listener.poll() is False
    assert ledger.record_missing_order(engine, "pi_NotifyMe", source="test")
    import select

    ready, _, _ = select.select([listener.fileno()], [], [], 5)
    assert ready and listener.poll() is True
    assert listener.poll() is False
    listener.close()


def test_two_dispatchers_on_postgres_never_claim_the_same_order(postgres_url: str) -> None:
    from orderpipe.db import session_scope

    engine = get_engine(postgres_url)
    for i in range(4):
        assert ledger.record_missing_order(engine, f"pi_Claim{i}", source="test")
    with session_scope(engine) as first:
        mine = ledger.claim_for_dispatch(first, limit=2)
        with session_scope(engine) as second:
            theirs = ledger.claim_for_dispatch(second, limit=10)
    assert len(mine) == 2 and len(theirs) == 2 and not set(mine) & set(theirs)


def test_an_order_that_cannot_be_started_for_5_minutes_alerts_once(sqlite_url: str) -> None:
    """Dispatch failing (Prefect away or refusing) is no longer silent: after 5 minutes one
    alert per order and kind of failure, however many rounds fail and whatever their text."""
    from datetime import timedelta

    from sqlalchemy import update

    from orderpipe.alerting import alerts
    from orderpipe.db import session_scope
    from orderpipe.tables import OrderRecord

    engine = get_engine(sqlite_url)
    assert ledger.record_missing_order(engine, "pi_Stuck", source="test")
    for _ in range(2):  # two rounds before 5 minutes: silent
        with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api",
                                         PREFECT_CLIENT_MAX_RETRIES: 0}):
            assert Dispatcher(engine).start("pi_Stuck") is None
    assert alerts.list_alerts(engine, "pi_Stuck") == []
    with session_scope(engine) as s:  # ... and the first failure was 6 minutes ago
        s.execute(update(OrderRecord).values(dispatch_failing_since=utcnow() - timedelta(minutes=6)))
    for _ in range(3):  # every later round fails too, each time against another port (other text)
        with temporary_settings(updates={PREFECT_API_URL: f"http://127.0.0.1:{free_port()}/api",
                                         PREFECT_CLIENT_MAX_RETRIES: 0}):
            assert Dispatcher(engine).start("pi_Stuck") is None
    [alert] = alerts.list_alerts(engine, "pi_Stuck")
    assert alert.kind == "dispatch_failing" and alert.step == "dispatch"
    assert "cannot be started since" in alert.message and "process-order/orderpipe" in alert.message
    row = ledger.get_order(engine, "pi_Stuck")
    assert row is not None and row.dispatch == "pending"  # still recorded, still tried
