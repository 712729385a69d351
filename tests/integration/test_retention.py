"""orderpipe purge / forget: personal data goes, what accounting law requires stays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine, update
from sqlmodel import Session

from orderpipe.db import get_engine, session_scope
from orderpipe.orders import ledger
from orderpipe.retention import PURGED_BODY
from orderpipe.tables import (
    CrmContact,
    CrmDeal,
    Event,
    Invoice,
    OrderRecord,
    PostNordBooking,
    ProductionLogEntry,
    utcnow,
)
from tests.conftest import REPO

OLD, NEW = "pi_3OldOrder0000001", "pi_3NewOrder0000001"
DAY = 86400


def event(order_id: str) -> dict[str, object]:
    return {"id": f"evt_{order_id}", "type": "payment_intent.succeeded", "livemode": False,
            "data": {"object": {"id": order_id, "receipt_email": "aino@example.fi",
                                "shipping": {"name": "Aino Virtanen", "address": {"line1": "Katu 1"}}}}}


def world(engine: Engine, data: Path) -> None:
    for order_id, age_days, email in ((OLD, 200, "aino@example.fi"), (NEW, 1, "ville@example.fi")):
        ledger.record_event(engine, event(order_id), json.dumps(event(order_id)))
        ledger.set_order_fields(engine, order_id, customer_email=email)
        at = utcnow() - timedelta(days=age_days)
        with session_scope(engine) as s:
            s.execute(update(Event).where(Event.order_id == order_id).values(received_at=at))
            contact = CrmContact(email=email, name="Aino Virtanen", phone="+358401234567")
            s.add(contact)
            s.flush()
            s.add(CrmDeal(order_id=order_id, contact_id=contact.id, title="Order", stage="won", currency="eur",
                          amount_total=4990))
            s.add(ProductionLogEntry(order_id=order_id, customer="Aino Virtanen", items="[]", status="done"))
            s.add(PostNordBooking(order_id=order_id, item_id=f"0037{age_days}", tracking_url="https://t/1",
                                  label_b64="JVBERi0=", booked_at=at, updated_at=at))
            s.add(Invoice(order_id=order_id, seller_id="FI1", year=2026, seq=age_days, number=f"2026-{age_days:06d}",
                          issue_date="2026-01-01", currency="eur", amount_total=4990, amount_tax=993))
        for rel in (f"labels/{order_id}.pdf", f"outbox/{order_id}.eml", f"invoices/2026-{age_days:06d}.pdf",
                    f"prefect/storage/shipment-order-{order_id}"):
            path = data / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"Aino Virtanen, Katu 1")
            os.utime(path, (time.time() - age_days * DAY, time.time() - age_days * DAY))


def cli(*args: str, data: Path, db_url: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STRIPE_", "ORDERPIPE_", "DATABASE_URL"))}
    env.update(ORDERPIPE_DATA_DIR=str(data), DATABASE_URL=db_url)
    return subprocess.run([sys.executable, "-m", "orderpipe.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def test_purge_older_than_90d(sqlite_url: str, data_dir: Path) -> None:
    engine = get_engine(sqlite_url)
    world(engine, data_dir)
    r = cli("purge", "--older-than", "90d", data=data_dir, db_url=sqlite_url)
    assert r.returncode == 0, r.stderr
    assert "removed: 1 raw webhook bodies" in r.stdout and "Accounting Act" in r.stdout
    with Session(engine) as s:
        bodies = {e.order_id: e.raw_body for e in s.query(Event)}
        labels = {b.order_id: b.label_b64 for b in s.query(PostNordBooking)}
        invoices = s.query(Invoice).count()
    assert bodies[OLD] == PURGED_BODY and "Aino" not in bodies[OLD] and "receipt_email" in bodies[NEW]
    assert labels == {OLD: None, NEW: "JVBERi0="}
    assert invoices == 2
    assert not (data_dir / f"labels/{OLD}.pdf").exists() and (data_dir / f"labels/{NEW}.pdf").exists()
    assert not (data_dir / f"outbox/{OLD}.eml").exists() and (data_dir / f"outbox/{NEW}.eml").exists()
    assert not (data_dir / f"prefect/storage/shipment-order-{OLD}").exists()
    assert (data_dir / f"prefect/storage/shipment-order-{NEW}").exists()
    assert (data_dir / "invoices/2026-000200.pdf").exists()  # 200 days old: kept 6 years
    # a redelivery of the purged event is still recognised: nothing is fulfilled twice
    assert ledger.record_event(engine, event(OLD), "{}").status == "duplicate"


def test_forget_erases_one_customer_and_says_what_it_kept(sqlite_url: str, data_dir: Path) -> None:
    engine = get_engine(sqlite_url)
    world(engine, data_dir)
    r = cli("forget", "AINO@example.fi", data=data_dir, db_url=sqlite_url)
    assert r.returncode == 0, r.stderr
    assert "kept:    invoices and credit notes 2026-000200" in r.stdout and "Accounting Act" in r.stdout
    with Session(engine) as s:
        contacts = {c.email: c for c in s.query(CrmContact)}
        order = s.get(OrderRecord, OLD)
        other = s.get(OrderRecord, NEW)
        log = {e.order_id: e.customer for e in s.query(ProductionLogEntry)}
        body = s.get(Event, f"evt_{OLD}")
    assert "aino@example.fi" not in contacts and "ville@example.fi" in contacts
    [erased] = [c for e, c in contacts.items() if e.startswith("forgotten-")]
    assert erased.name is None and erased.phone is None
    assert order is not None and order.customer_email is None and other is not None and other.customer_email
    assert log[OLD] is None and log[NEW] == "Aino Virtanen"
    assert body is not None and "Aino" not in body.raw_body
    assert not (data_dir / f"labels/{OLD}.pdf").exists() and not (data_dir / f"outbox/{OLD}.eml").exists()
    assert not (data_dir / f"prefect/storage/shipment-order-{OLD}").exists()
    assert (data_dir / "invoices/2026-000200.pdf").exists() and (data_dir / f"labels/{NEW}.pdf").exists()
