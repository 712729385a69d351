"""The process-order flow against a real Prefect server, on SQLite and on Postgres."""

from __future__ import annotations

import email
import time
from collections.abc import Iterator
from email.policy import default
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
    LogFilter,
    LogFilterFlowRunId,
)
from sqlalchemy import func, select
from sqlmodel import Session

from flows.process_order import OrderNotFulfilled, process_order
from orderpipe.alerting.alerts import list_alerts
from orderpipe.artifact import artifact_key, steps_table_key
from orderpipe.db import get_engine, migrate
from orderpipe.orders import ledger
from orderpipe.stripe_api.standin import SAMPLE_ORDER_IDS, StandinStore
from orderpipe.stripe_api.standin.samples import FI_CONSUMER, JP_YEN, SE_CUSTOMER
from orderpipe.tables import CrmDeal, EmailSent, Invoice, OrderRecord, ProductionLogEntry, Shipment
from tests.flow_env import add_order_copy, flow_settings
from tests.standins.stripe import running_standin


@pytest.fixture
def standin() -> Iterator[tuple[str, StandinStore]]:
    with running_standin(seed=True) as pair:
        yield pair


def _count(db_url: str, model: type, **where: str) -> int:
    with Session(get_engine(db_url)) as s:
        q = select(func.count()).select_from(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return int(s.scalar(q) or 0)


def _record(db_url: str, order_id: str) -> None:
    ledger.record_missing_order(get_engine(db_url), order_id, source="test")


def _run_id(db_url: str, order_id: str) -> str:
    row = ledger.get_order(get_engine(db_url), order_id)
    assert row is not None and row.flow_run_id
    return row.flow_run_id


def _wait_for_logs(run_id: str, *needles: str, timeout: float = 20) -> list[str]:
    """The run's log lines once each needle is in one (logs reach the server in batches)."""
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=5, at_exit=False)
    deadline = time.monotonic() + timeout
    while True:
        with get_client(sync_client=True) as client:
            lines = [log.message for log in client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(run_id)])), limit=200)]
        if all(any(n in line for line in lines) for n in needles) or time.monotonic() > deadline:
            return lines
        time.sleep(0.3)


def test_sample_orders_are_fulfilled(prefect_api: str, standin: tuple[str, StandinStore], data_dir: Path,
                                     any_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    base, _store = standin
    orders = [FI_CONSUMER, SE_CUSTOMER, JP_YEN]
    with flow_settings(monkeypatch, prefect_api, data_dir, any_db_url, base):
        for order_id in orders:
            _record(any_db_url, order_id)
            result = process_order(order_id=order_id)
            assert result["steps"] == {s: "completed" for s in ledger.STEPS}
            row = ledger.get_order(get_engine(any_db_url), order_id)
            assert row is not None and row.state == "completed"
            assert (data_dir / "labels" / f"{order_id}.pdf").read_bytes().startswith(b"%PDF")
            assert (data_dir / "invoices" / f"{row.invoice_number}.pdf").exists()
            assert b"<cbc:PayableAmount" in (data_dir / "invoices" / f"{row.invoice_number}.xml").read_bytes()
            msg = email.message_from_bytes((data_dir / "outbox" / f"{order_id}.eml").read_bytes(), policy=default)
            assert row.tracking_number and row.tracking_number in msg.get_body(("plain",)).get_content()
            assert _count(any_db_url, CrmDeal, order_id=order_id) == 1
            with Session(get_engine(any_db_url)) as s:
                entry = s.scalars(select(ProductionLogEntry).where(ProductionLogEntry.order_id == order_id)).one()
            assert "completed: fetch_order, crm, production_log, shipment, invoice, email" == entry.status
        with get_client(sync_client=True) as client:
            arts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[
                artifact_key(FI_CONSUMER)])))
        assert arts and "Tracking number" in str(arts[0].data)
        # the audit trail: task runs named for step and order, one business line per step, a steps table
        run_id = _run_id(any_db_url, FI_CONSUMER)
        row = ledger.get_order(get_engine(any_db_url), FI_CONSUMER)
        assert row is not None
        with get_client(sync_client=True) as client:
            names = {r.name for r in client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(run_id)])))}
            table = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[
                steps_table_key(FI_CONSUMER)])))
        assert {f"{s} · {FI_CONSUMER}" for s in ledger.STEPS} <= names
        assert table and table[0].type == "table" and "shipment" in str(table[0].data)
        lines = _wait_for_logs(run_id, row.tracking_number or "?", row.invoice_number or "?")
        assert any(f"tracking number {row.tracking_number}" in line for line in lines), lines
        assert any(line.startswith(f"invoice: {row.invoice_number} issued") for line in lines), lines
        assert any(line.startswith("crm: deal ") for line in lines), lines
        assert any(line.startswith("email: confirmation sent to ") for line in lines), lines
        # a replay of a completed order changes nothing
        process_order(order_id=FI_CONSUMER)
        assert _count(any_db_url, Invoice) == len(orders) and _count(any_db_url, Shipment) == len(orders)
        assert _count(any_db_url, EmailSent) == len(orders)
    assert len(SAMPLE_ORDER_IDS) >= 6


def test_missing_email_fails_crm_and_email_only_then_replay_completes(
    prefect_api: str, standin: tuple[str, StandinStore], data_dir: Path, sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, store = standin
    order_id = add_order_copy(store, FI_CONSUMER, "pi_3TestNoEmail000001", drop_email=True)
    with flow_settings(monkeypatch, prefect_api, data_dir, sqlite_url, base):
        _record(sqlite_url, order_id)
        with pytest.raises(OrderNotFulfilled, match="crm failed"):
            process_order(order_id=order_id)
        engine = get_engine(sqlite_url)
        steps = ledger.steps_of(engine, order_id)
        assert steps["shipment"] == steps["invoice"] == "completed"
        assert steps["crm"] == steps["email"] == "failed"
        row = ledger.get_order(engine, order_id)
        assert row is not None and row.state == "failed" and "no customer email" in (row.last_error or "")
        found = list_alerts(engine, order_id)
        assert {a.step for a in found} == {"crm", "email"} and all(order_id in a.message for a in found)
        first_invoice = row.invoice_number
        failed_run = _run_id(sqlite_url, order_id)
        lines = _wait_for_logs(failed_run, "crm failed for order")
        assert any(line.startswith(f"crm failed for order {order_id}: ") and f"orderpipe replay {order_id}" in line
                   for line in lines), lines

        # the shop fixes the customer's email in Stripe; a replay re-runs only what failed
        session = store.session_for(order_id)
        assert session is not None
        session["customer_details"]["email"] = "aino.fixed@example.fi"
        result = process_order(order_id=order_id)
        assert result["steps"] == {s: "completed" for s in ledger.STEPS}
        assert result["invoice_number"] == first_invoice
        replay_lines = _wait_for_logs(_run_id(sqlite_url, order_id), "invoice: cached from an earlier run")
        assert any(line.startswith("invoice: cached from an earlier run") and first_invoice in line
                   for line in replay_lines), replay_lines
        assert _count(sqlite_url, Invoice) == 1 and _count(sqlite_url, Shipment) == 1
        assert _count(sqlite_url, EmailSent) == 1 and _count(sqlite_url, CrmDeal) == 1
        assert len(list_alerts(engine, order_id)) == 2  # no new alerts for a successful replay
        assert _count(sqlite_url, OrderRecord, state="completed") == 1


def test_missing_shipping_address_fails_shipment_with_clear_message(
    prefect_api: str, standin: tuple[str, StandinStore], data_dir: Path, sqlite_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, store = standin
    order_id = add_order_copy(store, SE_CUSTOMER, "pi_3TestNoAddress0001", drop_shipping=True)
    with flow_settings(monkeypatch, prefect_api, data_dir, sqlite_url, base):
        _record(sqlite_url, order_id)
        with pytest.raises(OrderNotFulfilled, match="shipment failed: .*no shipping address"):
            process_order(order_id=order_id)
        steps = ledger.steps_of(get_engine(sqlite_url), order_id)
        assert steps["shipment"] == "failed" and steps["email"] == "pending" and steps["invoice"] == "completed"
        assert [a.step for a in list_alerts(get_engine(sqlite_url), order_id)] == ["shipment"]
        lines = _wait_for_logs(_run_id(sqlite_url, order_id), "email: not sent, because shipment failed")
        assert any(line.startswith("shipment failed for order") and "shipping address in Stripe" in line
                   for line in lines), lines
        assert any(line.startswith("email: not sent, because shipment failed") for line in lines), lines


def test_unknown_order_fails_fetch_without_retrying(prefect_api: str, standin: tuple[str, StandinStore],
                                                    data_dir: Path, sqlite_url: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    base, store = standin
    migrate(sqlite_url)
    with flow_settings(monkeypatch, prefect_api, data_dir, sqlite_url, base):
        _record(sqlite_url, "pi_3DoesNotExist00001")
        with pytest.raises(OrderNotFulfilled, match="fetch_order failed"):
            process_order(order_id="pi_3DoesNotExist00001")
    hits = [r for r in store.requests if "pi_3DoesNotExist00001" in r.get("path", "")]
    assert len(hits) == 1  # a 404 is permanent: no Prefect retries
