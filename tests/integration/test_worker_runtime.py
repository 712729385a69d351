"""`orderpipe worker` as a real process against a real Prefect server: crashes, cancels, drains.

Email goes through the Mailgun stand-in and the status callback to a shop stand-in; the
tests slow one of them down (answers held back, then 503) so that runs are in flight, past
their first steps, when the worker is killed, a run is cancelled or the worker is told to
stop. A kill while a Mailgun send is in flight leaves its outcome unknown (Mailgun offers no
lookup): that order waits for a person instead of risking a second email. A kill while the
callback is in flight (a repeat is harmless: the shop deduplicates on its Idempotency-Key)
is re-driven to completion.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import Session

from orderpipe import leases
from orderpipe.db import get_engine
from orderpipe.tables import EmailSent, Invoice, OrderStep, Shipment
from tests.prefect_server import prefect_database, prefect_server
from tests.standins.mailgun import MailgunStandIn
from tests.standins.shop_callback import ShopCallbackStandIn
from tests.standins.stripe import running_standin
from tests.standins.wsgi_thread import Fault
from tests.worker_stack import MAILGUN_DOMAIN, MAILGUN_KEY, RuntimeWorld

pytestmark = pytest.mark.timeout(420)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def prefect_api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(database kind, API URL): one Prefect server per kind for the module, on that database."""
    if request.param == "postgres" and not os.environ.get("ORDERPIPE_TEST_DATABASE_URL"):
        pytest.skip("POSTGRES TESTS SKIPPED: set ORDERPIPE_TEST_DATABASE_URL=postgresql+psycopg://... to run them")
    with ExitStack() as stack:
        prefect_db = stack.enter_context(prefect_database()) if request.param == "postgres" else None
        yield request.param, stack.enter_context(prefect_server(tmp_path_factory.mktemp("prefect"), prefect_db))


@pytest.fixture
def world(request: pytest.FixtureRequest, prefect_api: tuple[str, str], tmp_path: Path) -> Iterator[RuntimeWorld]:
    """orderpipe's database and the Prefect server both on SQLite, or both on Postgres."""
    kind, api = prefect_api
    db_url = request.getfixturevalue("sqlite_url" if kind == "sqlite" else "postgres_url")
    with ExitStack() as stack:
        stripe_base, store = stack.enter_context(running_standin())
        mailgun = stack.enter_context(MailgunStandIn(api_key=MAILGUN_KEY, domain=MAILGUN_DOMAIN))
        shop = stack.enter_context(ShopCallbackStandIn())
        w = RuntimeWorld(tmp_path / "world", db_url, api, stripe_base, store, mailgun, extra_env={
            "ORDERPIPE_STATUS_CALLBACK_URL": shop.callback_url, "ORDERPIPE_STATUS_CALLBACK_SECRET": shop.secret})
        w.shop = shop  # type: ignore[attr-defined]
        stack.callback(w.stop_all)
        yield w


def _hold_callbacks(world: RuntimeWorld, n: int, seconds: float) -> None:
    """The next n status callbacks stall for `seconds`, then fail with 503."""
    world.shop.inject(*[Fault(status=503, body={"error": "held by the test"}, delay=seconds,  # type: ignore[attr-defined]
                              path_contains="status") for _ in range(n)])


def _in_flight_at_shop(world: RuntimeWorld) -> int:
    return sum(1 for r in world.shop.requests if r.status is None)  # type: ignore[attr-defined]


def _hold_emails(world: RuntimeWorld, n: int, seconds: float) -> None:
    """The next n Mailgun sends stall for `seconds`, then fail with 503 (nothing is sent)."""
    world.mailgun.inject(*[Fault(status=503, body={"message": "held by the test"}, delay=seconds,
                                 path_contains="messages") for _ in range(n)])


def _in_flight_at_mailgun(world: RuntimeWorld) -> int:
    return sum(1 for r in world.mailgun.requests if "messages" in r.path and r.status is None)


def _assert_each_once(world: RuntimeWorld, order_ids: list[str]) -> None:
    assert world.emails_sent_to_mailgun() == len(order_ids)
    for order_id in order_ids:
        assert world.count(Shipment, order_id=order_id) == 1
        assert world.count(Invoice, order_id=order_id) == 1
        assert world.count(EmailSent, order_id=order_id) == 1
        runs = world.runs(name={"any_": [f"order-{order_id}"]})
        assert len(runs) == 1 and runs[0]["state_type"] == "COMPLETED", runs
    with Session(get_engine(world.db_url)) as s:
        seqs = sorted(s.scalars(select(Invoice.seq)).all())
    assert seqs == list(range(1, len(seqs) + 1))  # gapless


def test_kill_9_of_a_worker_with_five_runs_in_flight_then_restart_finishes_each_order_once(
        world: RuntimeWorld) -> None:
    orders = world.new_orders("KillWorker", 5)
    _hold_callbacks(world, 5, seconds=60)
    worker = world.start_worker("worker-a", ORDERPIPE_RUN_LIMIT="5")
    world.record(orders)
    world.wait(lambda: _in_flight_at_shop(world) == 5, 90,
               f"5 runs never reached the status callback: {world.states(orders)}\n{worker.tail()}", worker)
    world.kill(worker)  # the children die with it (PR_SET_PDEATHSIG)

    restarted = world.start_worker("worker-a2", machine="worker-a", ORDERPIPE_RUN_LIMIT="5")  # same machine
    took = world.wait_completed(orders, timeout=120)
    print(f"recovered 5 interrupted orders {took:.1f} s after the new worker was up")
    _assert_each_once(world, orders)
    with Session(get_engine(world.db_url)) as s:
        steps = s.scalars(select(OrderStep).where(OrderStep.order_id.in_(orders))).all()  # type: ignore[attr-defined]
    for step in steps:  # what completed before the kill was not done again
        if step.step in ("crm", "production_log", "shipment", "invoice", "email"):
            assert step.attempts == 1, (step.order_id, step.step, step.attempts)
    runs = world.runs(name={"any_": [f"order-{o}" for o in orders]})
    assert all(r["run_count"] == 2 for r in runs), [(r["name"], r["run_count"]) for r in runs]
    assert leases.all_leases(get_engine(world.db_url)) == {}
    assert restarted.proc.poll() is None


def test_kill_9_during_a_mailgun_send_needs_attention_and_never_sends_twice(world: RuntimeWorld) -> None:
    """Mailgun has no lookup: a send cut by a power cut may or may not have gone out. The
    re-driven run stops at the email step, the order is needs_attention and one alert says
    what to check; nothing is sent a second time, nothing else is done twice."""
    if world.db_url.startswith("postgresql"):
        pytest.skip("the same on Postgres; one database is enough for this case")
    orders = world.new_orders("KillMidSend", 2)
    _hold_emails(world, 2, seconds=60)
    worker = world.start_worker("worker-m", ORDERPIPE_RUN_LIMIT="2")
    world.record(orders)
    world.wait(lambda: _in_flight_at_mailgun(world) == 2, 90, "runs never reached the email step", worker)
    world.kill(worker)
    world.start_worker("worker-m2", machine="worker-m", ORDERPIPE_RUN_LIMIT="2")
    world.wait(lambda: set(world.states(orders).values()) == {"needs_attention"}, 120,
               f"not needs_attention: {world.states(orders)}")
    from orderpipe.alerting.alerts import list_alerts

    engine = get_engine(world.db_url)
    for order_id in orders:
        assert world.count(Shipment, order_id=order_id) == 1
        assert world.count(Invoice, order_id=order_id) == 1
        assert world.count(EmailSent, order_id=order_id) == 0
        kinds = [a.kind for a in list_alerts(engine, order_id)]
        assert kinds == ["needs_attention"], kinds
    time.sleep(3)  # nothing more happens: no retry sends
    assert world.emails_sent_to_mailgun() == 0
    assert sum(1 for r in world.mailgun.requests if "messages" in r.path) == 2


def test_cancel_from_prefect_stops_the_run_process_and_fails_the_order(world: RuntimeWorld) -> None:
    if world.db_url.startswith("postgresql"):
        pytest.skip("the worker's own logic, the same on both databases; SQLite runs it")
    [order_id] = world.new_orders("CancelRun", 1)
    _hold_emails(world, 1, seconds=120)
    worker = world.start_worker("worker-c")
    world.record([order_id])
    world.wait(lambda: _in_flight_at_mailgun(world) == 1, 90, "run never reached the email step", worker)
    [run] = world.runs(name={"any_": [f"order-{order_id}"]})
    engine = get_engine(world.db_url)
    pid = _lease_pid(world, run["id"])
    assert pid and _alive(pid)
    # what the UI's Cancel button sends
    r = httpx.post(f"{world.api}/flow_runs/{run['id']}/set_state",
                   json={"state": {"type": "CANCELLING", "message": "cancelled by a person"}, "force": True})
    assert r.status_code in (200, 201), r.text
    world.wait(lambda: not _alive(pid), 30, "the run's process was not stopped", worker)
    world.wait(lambda: world.states([order_id])[order_id] == "failed", 30, "order not failed")
    [after] = world.runs(name={"any_": [f"order-{order_id}"]})
    assert after["state_type"] == "CANCELLED"
    from orderpipe.orders import ledger

    row = ledger.get_order(engine, order_id)
    assert row is not None and "cancel" in (row.last_error or "")
    assert world.emails_sent_to_mailgun() == 0
    assert worker.proc.poll() is None  # one run's end never takes the worker down


def test_sigterm_drains_running_runs_and_exits_zero(world: RuntimeWorld) -> None:
    if world.db_url.startswith("postgresql"):
        pytest.skip("the worker's own logic, the same on both databases; SQLite runs it")
    orders = world.new_orders("DrainRun", 2)
    world.mailgun.inject(*[Fault(status=503, delay=3, path_contains="messages") for _ in range(2)])
    worker = world.start_worker("worker-d", ORDERPIPE_DRAIN_SECONDS="60")
    world.record(orders)
    world.wait(lambda: _in_flight_at_mailgun(world) == 2, 90, "runs never reached the email step", worker)
    os.kill(worker.proc.pid, signal.SIGTERM)
    assert worker.proc.wait(timeout=90) == 0, worker.tail()
    assert world.states(orders) == {o: "completed" for o in orders}  # finished, not abandoned
    _assert_each_once(world, orders)


def _lease_pid(world: RuntimeWorld, flow_run_id: str) -> int | None:
    from orderpipe.tables import RunLease

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with Session(get_engine(world.db_url)) as s:
            row = s.get(RunLease, flow_run_id)
            if row is not None and row.pid:
                return row.pid
        time.sleep(0.1)
    return None


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False
