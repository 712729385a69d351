"""process-order with vendor faults: unknown outcomes, alert dedupe, bad data, failures outside steps.

Real Prefect server, real PostNord stand-in over HTTP, the bundled Stripe stand-in."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.process_order import OrderNotFulfilled, process_order
from orderpipe.alerting.alerts import list_alerts
from orderpipe.db import get_engine
from orderpipe.orders import ledger
from orderpipe.stripe_api.standin import StandinStore
from orderpipe.stripe_api.standin.samples import FI_CONSUMER
from tests.flow_env import add_order_copy, flow_settings
from tests.standins.postnord import API_KEY, BOOK_PATH, PostNordStandIn
from tests.standins.stripe import running_standin
from tests.standins.wsgi_thread import Drop, Fault


@pytest.fixture
def stripe() -> Iterator[tuple[str, StandinStore]]:
    with running_standin(seed=True) as pair:
        yield pair


@pytest.fixture
def postnord() -> Iterator[PostNordStandIn]:
    with PostNordStandIn() as s:
        yield s  # type: ignore[misc]


def postnord_env(standin: PostNordStandIn) -> dict[str, str]:
    return {"ORDERPIPE_SHIPPING": "postnord", "POSTNORD_API_KEY": API_KEY, "POSTNORD_CUSTOMER_NUMBER": "0111111118",
            "POSTNORD_SERVICE_CODE": "19", "POSTNORD_API_BASE": standin.url, "ORDERPIPE_SELLER_COUNTRY": "FI"}


def test_a_booking_whose_answer_was_lost_needs_attention_and_is_never_booked_again(
    prefect_api: str, stripe: tuple[str, StandinStore], postnord: PostNordStandIn, data_dir: Path,
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, store = stripe
    order_id = add_order_copy(store, FI_CONSUMER, "pi_3TestLostBooking01")
    postnord.inject(Drop(path_contains=BOOK_PATH))
    engine = get_engine(sqlite_url)
    with flow_settings(monkeypatch, prefect_api, data_dir, sqlite_url, base, **postnord_env(postnord)):
        ledger.record_missing_order(engine, order_id, source="test")
        for _ in range(2):  # the run, then a replay (or reconcile's re-drive)
            with pytest.raises(OrderNotFulfilled, match="shipment failed"):
                process_order(order_id=order_id)
    assert len(postnord.calls("POST", BOOK_PATH)) == 1 and len(postnord.bookings) == 1
    steps = ledger.steps_of(engine, order_id)
    assert steps["shipment"] == "needs_attention" and steps["invoice"] == "completed"
    row = ledger.get_order(engine, order_id)
    assert row is not None and row.state == "needs_attention"
    [alert] = list_alerts(engine, order_id)
    assert alert.kind == "needs_attention" and alert.step == "shipment"
    assert f"messageId {order_id}-1" in alert.message and f"orderpipe resolve {order_id} shipment" in alert.message


def test_a_step_failing_again_with_a_fresh_request_id_alerts_once(
    prefect_api: str, stripe: tuple[str, StandinStore], postnord: PostNordStandIn, data_dir: Path,
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, store = stripe
    order_id = add_order_copy(store, FI_CONSUMER, "pi_3TestRefusedAgain1")
    engine = get_engine(sqlite_url)
    with flow_settings(monkeypatch, prefect_api, data_dir, sqlite_url, base, **postnord_env(postnord)):
        ledger.record_missing_order(engine, order_id, source="test")
        for _ in range(3):  # every re-drive: the same refusal, a new request id in its text
            postnord.inject(Fault(status=400, path_contains=BOOK_PATH, body={
                "message": f"Invalid indata object EdiInstruction (request {uuid.uuid4()})",
                "compositeFault": {"faults": [{"faultCode": "InvalidValue", "explanationText": "bad"}]}}))
            with pytest.raises(OrderNotFulfilled, match="shipment failed"):
                process_order(order_id=order_id)
    [alert] = list_alerts(engine, order_id)
    assert alert.step == "shipment" and alert.kind == "step_failed" and "HTTP 400" in alert.message
    assert alert.dedupe_key == f"step_failed:{order_id}:shipment:PermanentError/4xx"


def test_a_ledger_write_failing_at_the_start_of_the_run_alerts(
    prefect_api: str, stripe: tuple[str, StandinStore], data_dir: Path, sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, store = stripe
    order_id = add_order_copy(store, FI_CONSUMER, "pi_3TestLedgerBroken1")
    engine = get_engine(sqlite_url)
    ledger.record_missing_order(engine, order_id, source="test")
    with engine.begin() as c:
        c.exec_driver_sql("CREATE TRIGGER broken BEFORE UPDATE OF state ON orders WHEN NEW.state = 'running' "
                          "BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END")
    with flow_settings(monkeypatch, prefect_api, data_dir, sqlite_url, base):
        for _ in range(2):
            with pytest.raises(Exception, match="disk is full"):
                process_order(order_id=order_id)
    [alert] = list_alerts(engine, order_id)
    assert alert.kind == "run_error" and alert.step == "flow" and "outside its steps" in alert.message
    assert "disk is full" in alert.message


def test_a_name_longer_than_the_database_column_is_a_permanent_alerted_error(
    prefect_api: str, stripe: tuple[str, StandinStore], data_dir: Path, postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Postgres raises DataError for a 300-character name: not retried, one clear alert per step,
    and everything that does not store the name still happens."""
    base, store = stripe
    order_id = add_order_copy(store, FI_CONSUMER, "pi_3TestLongName0001")
    session = store.session_for(order_id)
    assert session is not None
    session["customer_details"]["name"] = "Aino " + "Virtanen-" * 33
    engine = get_engine(postgres_url)
    with flow_settings(monkeypatch, prefect_api, data_dir, postgres_url, base):
        ledger.record_missing_order(engine, order_id, source="test")
        with pytest.raises(OrderNotFulfilled, match="does not fit orderpipe's database"):
            process_order(order_id=order_id)
    steps = ledger.steps_of(engine, order_id)
    failed = [s for s, st in steps.items() if st == "failed"]
    assert failed and set(failed) <= {"crm", "production_log"}
    assert steps["shipment"] == steps["invoice"] == "completed"
    from sqlmodel import Session, select

    from orderpipe.tables import OrderStep

    with Session(engine) as s:
        attempts = {r.step: r.attempts for r in s.exec(select(OrderStep).where(OrderStep.order_id == order_id))}
    assert all(attempts[step] == 1 for step in failed)  # permanent: no Prefect retries
    alerts = list_alerts(engine, order_id)
    assert {a.step for a in alerts} == set(failed)
    assert all("fix the order data" in a.message for a in alerts)


def test_reconcile_giving_up_on_an_order_alerts_once(
    prefect_api: str, stripe: tuple[str, StandinStore], data_dir: Path, sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from datetime import timedelta

    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.states import Failed, Running

    from orderpipe.bootstrap import process_services
    from orderpipe.orders.reconciliation import MAX_AUTO_RETRIES, reconcile_now

    @flow(name="process-order-give-up")
    def dummy() -> None:
        pass

    base, store = stripe
    order_id = add_order_copy(store, FI_CONSUMER, "pi_3TestGivenUp00001")
    engine = get_engine(sqlite_url)
    with flow_settings(monkeypatch, prefect_api, data_dir, sqlite_url, base):
        ledger.record_missing_order(engine, order_id, source="test")
        with get_client(sync_client=True) as client:
            run = client.create_flow_run(dummy, name=f"order-{order_id}")
            for _ in range(MAX_AUTO_RETRIES + 1):  # it ran and failed more often than reconcile retries
                client.set_flow_run_state(run.id, Running(), force=True)
                client.set_flow_run_state(run.id, Failed(message="shipment failed"), force=True)
        ledger.set_order_state(engine, order_id, "failed", flow_run_id=str(run.id), dispatch="started",
                               last_error="shipment: PostNord cannot ship to FI")
        for _ in range(2):
            report = reconcile_now(process_services(), since=timedelta(hours=1))
            assert order_id not in report.runs_retried
    [alert] = list_alerts(engine, order_id)
    assert alert.kind == "gave_up" and "gave up after" in alert.message and "PostNord cannot ship" in alert.message
