"""orderpipe purge / forget: personal data goes, what accounting law requires stays.

Real parts: the CLI in a subprocess (or retention.purge in-process, for a cutoff in the
future), SQLite, moto's S3 server, and the session's real Prefect server for the artifacts.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import httpx
import pytest
from sqlalchemy import Engine, update
from sqlmodel import Session, select

from orderpipe import retention
from orderpipe.artifact import (
    StepTiming,
    artifact_key,
    md,
    order_markdown,
    order_status_markdown,
    steps_table,
    steps_table_key,
)
from orderpipe.connectors.base import InvoiceResult, ShipmentResult, StoredFile
from orderpipe.db import get_engine, session_scope
from orderpipe.order import Address, Order, OrderLine
from orderpipe.orders import ledger
from orderpipe.result_storage import RESULTS_FOLDER
from orderpipe.retention import PURGED_BODY
from orderpipe.settings import load_settings
from orderpipe.states import Step
from orderpipe.tables import (
    CrmContact,
    CrmDeal,
    ErasurePending,
    Event,
    Invoice,
    OrderRecord,
    PostNordBooking,
    ProductionLogEntry,
    utcnow,
)
from tests.conftest import REPO, free_port
from tests.standins.s3 import MotoS3

OLD, NEW = "pi_3OldOrder0000001", "pi_3NewOrder0000001"
DAY = 86400


def event(order_id: str) -> dict[str, object]:
    return {"id": f"evt_{order_id}", "type": "payment_intent.succeeded", "livemode": False,
            "data": {"object": {"id": order_id, "receipt_email": "aino@example.fi",
                                "shipping": {"name": "Aino Virtanen", "address": {"line1": "Katu 1"}}}}}


def world(engine: Engine, data: Path, old: str = OLD, new: str = NEW, *, name: str = "Aino Virtanen",
          company: str | None = None) -> None:
    """Two customers' orders: ``old`` (Aino, 200 days ago) and ``new`` (Ville's email, 1 day ago)."""
    for order_id, age_days, email in ((old, 200, "aino@example.fi"), (new, 1, "ville@example.fi")):
        body = event(order_id)
        body["data"]["object"]["shipping"]["name"] = name  # type: ignore[index]
        ledger.record_event(engine, body, json.dumps(body))
        ledger.set_order_fields(engine, order_id, customer_email=email)
        at = utcnow() - timedelta(days=age_days)
        with session_scope(engine) as s:
            s.execute(update(Event).where(Event.order_id == order_id).values(received_at=at))
            contact = CrmContact(email=email, name=name, phone="+358401234567", company=company)
            s.add(contact)
            s.flush()
            s.add(CrmDeal(order_id=order_id, contact_id=contact.id, title="Order", stage="won", currency="eur",
                          amount_total=4990))
            s.add(ProductionLogEntry(order_id=order_id, customer=name, items="[]", status="done"))
            s.add(PostNordBooking(order_id=order_id, item_id=f"0037{age_days}", tracking_url="https://t/1",
                                  label_b64="JVBERi0=", booked_at=at, updated_at=at))
            buyer = {"name": company or name, "street": "Katu 1", "email": email, "country": "FI"}
            s.add(Invoice(order_id=order_id, seller_id="FI1", year=2026, seq=age_days, number=f"2026-{age_days:06d}",
                          issue_date="2026-01-01", currency="eur", amount_total=4990, amount_tax=993,
                          document=json.dumps({"buyer": buyer, "delivery": {"name": name, "line1": "Katu 1"}})))
        for rel in (f"labels/{order_id}.pdf", f"outbox/{order_id}.eml", f"invoices/2026-{age_days:06d}.pdf",
                    f"prefect/storage/shipment-order-{order_id}"):
            path = data / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"Aino Virtanen, Katu 1")
            os.utime(path, (time.time() - age_days * DAY, time.time() - age_days * DAY))


def closed_prefect() -> str:
    """A Prefect API URL nobody listens on (the default 127.0.0.1:4200 may be someone's server)."""
    return f"http://127.0.0.1:{free_port()}/api"


def cli(*args: str, data: Path, db_url: str, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STRIPE_", "ORDERPIPE_", "DATABASE_URL", "PREFECT_API_", "AWS_"))}
    env.update({"ORDERPIPE_DATA_DIR": str(data), "DATABASE_URL": db_url, "PREFECT_API_URL": closed_prefect(), **extra})
    return subprocess.run([sys.executable, "-m", "orderpipe.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=120)


def pending(engine: Engine) -> set[tuple[str, str]]:
    with Session(engine) as s:
        return {(p.order_id, p.part) for p in s.exec(select(ErasurePending))}


def test_purge_older_than_90d(sqlite_url: str, data_dir: Path) -> None:
    engine = get_engine(sqlite_url)
    world(engine, data_dir)
    r = cli("purge", "--older-than", "90d", data=data_dir, db_url=sqlite_url)
    assert r.returncode == 0, r.stderr
    assert "removed: 1 raw webhook bodies" in r.stdout and "Accounting Act" in r.stdout
    # no Prefect server here: said, not failed (a second purge does it)
    assert "kept:    NOT PURGED: Prefect artifacts order-... created before" in r.stdout
    assert "could not be reached" in r.stdout and "run `orderpipe purge` again" in r.stdout
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
    assert f"kept:    NOT ERASED YET: the Prefect artifacts order-<id> and order-<id>-steps of orders {OLD}" in r.stdout
    assert pending(engine) == {(OLD, "prefect")}  # the next forget or purge finishes it
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
    assert log[OLD] is None and log[NEW] == "Aino Virtanen"  # world() names both customers Aino
    assert body is not None and "Aino" not in body.raw_body
    assert not (data_dir / f"labels/{OLD}.pdf").exists() and not (data_dir / f"outbox/{OLD}.eml").exists()
    assert not (data_dir / f"prefect/storage/shipment-order-{OLD}").exists()
    assert (data_dir / "invoices/2026-000200.pdf").exists() and (data_dir / f"labels/{NEW}.pdf").exists()


# ---- S3 (moto's S3 server) ---------------------------------------------------------------

REGION = "eu-north-1"
LABEL = b"%PDF-1.4\n% label: Aino Virtanen, Katu 1\n%%EOF\n"


@pytest.fixture(scope="module")
def retention_moto() -> Iterator[MotoS3]:
    with MotoS3() as server:
        yield server


@pytest.fixture
def bucket(retention_moto: MotoS3, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Any]:
    """A fresh bucket and a plain boto3 client to fill and inspect it behind orderpipe's back."""
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    name = f"orderpipe-retention-{uuid.uuid4().hex[:10]}"
    admin = boto3.client("s3", endpoint_url=retention_moto.url, region_name=REGION, aws_access_key_id="testing",
                         aws_secret_access_key="testing-secret")
    admin.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})
    return name, admin


def s3_env(endpoint: str, bucket: str, labels: str = "labels/", invoices: str = "invoices/") -> dict[str, str]:
    return {"ORDERPIPE_FILE_STORE": "s3", "ORDERPIPE_S3_BUCKET": bucket, "ORDERPIPE_S3_PREFIX": labels,
            "ORDERPIPE_S3_INVOICE_PREFIX": invoices, "AWS_ENDPOINT_URL_S3": endpoint, "AWS_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret"}


def keys(admin: Any, bucket: str) -> set[str]:
    return {o["Key"] for page in admin.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])}


def put(admin: Any, bucket: str, *object_keys: str) -> None:
    for key in object_keys:
        admin.put_object(Bucket=bucket, Key=key, Body=LABEL)


def in_process(monkeypatch: pytest.MonkeyPatch, data: Path, db_url: str, **env: str) -> Any:
    for name in [k for k in os.environ if k.startswith(("ORDERPIPE_", "PREFECT_API_"))]:
        monkeypatch.delenv(name)
    for name, value in {"ORDERPIPE_DATA_DIR": str(data), "DATABASE_URL": db_url,
                        "PREFECT_API_URL": closed_prefect(), **env}.items():
        monkeypatch.setenv(name, value)
    return load_settings()


def next_second() -> datetime:
    """A cutoff on a whole second, after every object put so far (S3 LastModified has whole
    seconds): objects put after this returns are not older than it."""
    cutoff = math.floor(time.time()) + 1
    time.sleep(cutoff - time.time() + 0.01)
    return datetime.fromtimestamp(cutoff, UTC)


# The nested prefix layouts are covered by the key rules (tests/unit/test_retention_rules.py);
# here the default layout and the hardest one, labels and invoices under one prefix.
@pytest.mark.parametrize(("labels", "invoices"), [("labels/", "invoices/"), ("shop/", "shop/")])
def test_purge_deletes_old_s3_labels_and_results_never_an_invoice(
    retention_moto: MotoS3, bucket: tuple[str, Any], sqlite_url: str, data_dir: Path,
    monkeypatch: pytest.MonkeyPatch, labels: str, invoices: str,
) -> None:
    name, admin = bucket
    old_labels = {f"{labels}pi_3OldLabel000001.pdf", f"{labels}pi_3OldLabel000002.pdf"}
    old_results = {f"{RESULTS_FOLDER}shipment-order-pi_3OldLabel000001", f"{RESULTS_FOLDER}9c1e4f0a2b7d41e3"}
    old_kept = {f"{invoices}2026-000001.pdf", f"{invoices}2026-000001.xml", f"{invoices}CN-2026-000001.pdf",
                f"{invoices}CN-2026-000001.xml", f"{labels}notes.txt", "elsewhere/pi_3OldLabel000001.pdf"}
    put(admin, name, *old_labels, *old_results, *old_kept)
    cutoff = next_second()
    new = {f"{labels}pi_3NewLabel000001.pdf", f"{RESULTS_FOLDER}shipment-order-pi_3NewLabel000001",
           f"{invoices}2026-000002.pdf"}
    put(admin, name, *new)
    settings = in_process(monkeypatch, data_dir, sqlite_url, **s3_env(retention_moto.url, name, labels, invoices))

    # a cutoff between the two batches: now = cutoff + 90 days, so the results' cache expiry is the same cutoff
    report = retention.purge(settings, get_engine(sqlite_url), timedelta(days=90), now=cutoff + timedelta(days=90))

    assert keys(admin, name) == old_kept | new
    assert (f"removed: 2 label objects in s3://{name}/{labels} and 2 Prefect results in s3://{name}/prefect-results/"
            in "\n".join(report.lines())), report.lines()


def test_forget_deletes_the_customers_s3_labels_and_cached_results(
    retention_moto: MotoS3, bucket: tuple[str, Any], sqlite_url: str, data_dir: Path,
) -> None:
    name, admin = bucket
    engine = get_engine(sqlite_url)
    world(engine, data_dir)
    put(admin, name, f"labels/{OLD}.pdf", f"labels/{NEW}.pdf", "invoices/2026-000200.pdf",
        "invoices/2026-000200.xml", f"{RESULTS_FOLDER}shipment-order-{OLD}", f"{RESULTS_FOLDER}email-order-{OLD}",
        f"{RESULTS_FOLDER}shipment-order-{NEW}", f"{RESULTS_FOLDER}shipment-order-{OLD}2")

    r = cli("forget", "aino@example.fi", data=data_dir, db_url=sqlite_url, **s3_env(retention_moto.url, name))

    assert r.returncode == 0, r.stderr
    assert f"removed: 1 label objects and 2 cached step results in S3 (s3://{name}/prefect-results/)" in r.stdout
    assert keys(admin, name) == {f"labels/{NEW}.pdf", "invoices/2026-000200.pdf", "invoices/2026-000200.xml",
                                 f"{RESULTS_FOLDER}shipment-order-{NEW}", f"{RESULTS_FOLDER}shipment-order-{OLD}2"}
    assert pending(engine) == {(OLD, "prefect")}  # S3 done; no Prefect server here


# ---- Prefect artifacts (the session's real Prefect server) ----------------------------------

NAME, COMPANY = "Aino O'Brien-Virtanen", "Kahvila (Aino) Oy"


def leftovers(text: str, *values: str) -> list[str]:
    """The values (raw or as the artifact's md() escaped them) still in ``text``."""
    return [f for v in values for f in (v, md(v)) if f.lower() in text.lower()]


def post_artifact(api: str, key: str, data: str, kind: str = "markdown") -> None:
    r = httpx.post(f"{api}/artifacts/", json={"key": key, "type": kind, "data": data, "description": f"Order {key}"},
                   timeout=10)
    assert r.status_code == 201, r.text


def artifact_versions(api: str, *artifact_keys: str) -> list[dict[str, Any]]:
    r = httpx.post(f"{api}/artifacts/filter", json={"artifacts": {"key": {"any_": list(artifact_keys)}}}, timeout=10)
    r.raise_for_status()
    return list(r.json())


def latest(api: str, key: str) -> str:
    r = httpx.get(f"{api}/artifacts/{key}/latest", timeout=10)
    r.raise_for_status()
    return str(r.json()["data"])


def order_artifacts(api: str, order_id: str, email: str, invoice_number: str, name: str = NAME,
                    company: str | None = COMPANY) -> None:
    """What the flows write for an order: the summary, the summary again after a refund, and
    the steps table as runs before the id-only outcome lines tabled it."""
    order = Order(order_id=order_id, created=datetime(2026, 6, 1, tzinfo=UTC), currency="eur", amount_total=4990,
                  customer_email=email, business_name=company, locale="fi",
                  shipping_address=Address(name=name, line1="Katu 1", postal_code="00100", city="Helsinki",
                                           country="FI"),
                  lines=[OrderLine(description="Mug", quantity=1, amount_subtotal=4990, amount_total=4990)])
    shipped = ShipmentResult(tracking_number="RR000000200FI", carrier="local", tracking_url="https://t.example/RR",
                             label=StoredFile(key=f"labels/{order_id}.pdf"), created=True)
    invoiced = InvoiceResult(invoice_number=invoice_number, issue_date="2026-06-01", currency="eur",
                             amount_total=4990, amount_tax=966, pdf_key=f"invoices/{invoice_number}.pdf", created=True)
    post_artifact(api, artifact_key(order_id), order_markdown(
        order, steps={s: "completed" for s in Step}, crm=None, shipment=shipped, invoice=invoiced, email=None,
        errors={}))
    row = SimpleNamespace(order_id=order_id, customer_email=email, country="FI", currency="eur", amount_total=4990,
                          state="completed", tracking_number="RR000000200FI", invoice_number=invoice_number)
    post_artifact(api, artifact_key(order_id), order_status_markdown(
        row, {s: "completed" for s in Step}, {"payment_status": "refunded", "refunded_amount": 4990,
                                              "credit_notes": []}))
    at = datetime(2026, 6, 1, tzinfo=UTC)
    post_artifact(api, steps_table_key(order_id), json.dumps(steps_table([
        StepTiming(step=Step.CRM, submitted=at, finished=at, state_name="Completed", outcome="deal 1 for contact 1"),
        StepTiming(step=Step.EMAIL, submitted=at, finished=at, state_name="Completed",
                   outcome=f"confirmation sent to {email} in language fi via outbox, message id <m1@shop>"),
    ])), "table")


def order_ids() -> tuple[str, str]:
    """Fresh ids: the Prefect server is shared by the session's tests."""
    tag = uuid.uuid4().hex[:10]
    return f"pi_3Old{tag}", f"pi_3New{tag}"


def test_forget_rewrites_every_version_of_the_customers_artifacts(
    prefect_api: str, sqlite_url: str, data_dir: Path,
) -> None:
    old, new = order_ids()
    engine = get_engine(sqlite_url)
    world(engine, data_dir, old, new, name=NAME, company=COMPANY)
    order_artifacts(prefect_api, old, "aino@example.fi", "2026-000200")
    order_artifacts(prefect_api, new, "ville@example.fi", "2026-000001", name="Ville Nieminen", company=None)
    before = {v["id"]: v["data"] for v in artifact_versions(prefect_api, artifact_key(new), steps_table_key(new))}
    shown = "\n".join(str(v["data"]) for v in artifact_versions(prefect_api, artifact_key(old), steps_table_key(old)))
    assert set(leftovers(shown, NAME, COMPANY, "aino@example.fi")) == {md(NAME), md(COMPANY), "aino@example.fi",
                                                                       md("aino@example.fi")}

    r = cli("forget", "Aino@Example.fi", data=data_dir, db_url=sqlite_url, PREFECT_API_URL=prefect_api)

    assert r.returncode == 0, r.stderr
    assert "removed: 3 of 3 Prefect artifact versions of 1 orders rewritten" in r.stdout, r.stdout
    summaries = artifact_versions(prefect_api, artifact_key(old))
    [table] = artifact_versions(prefect_api, steps_table_key(old))
    assert len(summaries) == 2
    for version in [*summaries, table]:
        assert leftovers(str(version["data"]), NAME, COMPANY, "aino@example.fi", "Katu 1") == [], version["data"]
    for version in summaries:  # the audit trail stays
        data = str(version["data"])
        assert f"# Order `{old}`" in data and "RR000000200FI" in data and "EUR" in data
        assert "**Customer:** (erased by orderpipe forget on " in data
        assert "2026-000200" in data or "2026\\-000200" in data  # the summary, the status view (md-escaped)
    rows = {row["step"]: row["outcome"] for row in json.loads(table["data"])}
    assert rows["email"] == "confirmation sent to the customer in language fi via outbox, message id <m1@shop>"
    assert rows["crm"] == "deal 1 for contact 1"
    assert leftovers(latest(prefect_api, artifact_key(old)), NAME, "aino@example.fi") == []  # the UI's latest view
    after = {v["id"]: v["data"] for v in artifact_versions(prefect_api, artifact_key(new), steps_table_key(new))}
    assert after == before  # another customer's artifacts are untouched
    assert pending(engine) == set()


def test_purge_rewrites_the_artifacts_created_before_the_cutoff(
    prefect_api: str, sqlite_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    old, new = order_ids()
    engine = get_engine(sqlite_url)
    world(engine, data_dir, old, new, name=NAME, company=COMPANY)
    order_artifacts(prefect_api, old, "aino@example.fi", "2026-000200")
    time.sleep(0.05)
    cutoff = datetime.now(UTC)
    time.sleep(0.05)
    order_artifacts(prefect_api, new, "ville@example.fi", "2026-000001", name="Ville Nieminen", company=None)
    before = {v["id"]: v["data"] for v in artifact_versions(prefect_api, artifact_key(new), steps_table_key(new))}
    settings = in_process(monkeypatch, data_dir, sqlite_url, PREFECT_API_URL=prefect_api)

    report = retention.purge(settings, engine, timedelta(days=90), now=cutoff + timedelta(days=90))

    [line] = [x for x in report.lines() if "Prefect artifact versions" in x]
    assert line.startswith("removed: ") and f"created before {cutoff:%Y-%m-%d}" in line
    assert int(line.split()[1]) >= 3  # ours, and older ones of the session's other tests
    for version in artifact_versions(prefect_api, artifact_key(old), steps_table_key(old)):
        data = str(version["data"])
        assert leftovers(data, NAME, COMPANY, "aino@example.fi") == [], data
        assert version["key"].endswith("-steps") or "**Customer:** (erased by orderpipe purge on " in data
    after = {v["id"]: v["data"] for v in artifact_versions(prefect_api, artifact_key(new), steps_table_key(new))}
    assert after == before  # younger than the cutoff
    assert "ville@example" in str(after)


def test_forget_finishes_on_the_next_run_what_s3_and_prefect_were_away_for(
    prefect_api: str, retention_moto: MotoS3, bucket: tuple[str, Any], sqlite_url: str, data_dir: Path,
) -> None:
    name, admin = bucket
    old, new = order_ids()
    engine = get_engine(sqlite_url)
    world(engine, data_dir, old, new, name=NAME, company=COMPANY)
    put(admin, name, f"labels/{old}.pdf", f"{RESULTS_FOLDER}shipment-order-{old}", "invoices/2026-000200.pdf")
    order_artifacts(prefect_api, old, "aino@example.fi", "2026-000200")

    away = cli("forget", "aino@example.fi", data=data_dir, db_url=sqlite_url,
               **s3_env(f"http://127.0.0.1:{free_port()}", name))

    assert away.returncode == 0, away.stderr
    assert f"kept:    NOT ERASED YET: the S3 labels and cached results of orders {old}" in away.stdout
    assert f"kept:    NOT ERASED YET: the Prefect artifacts order-<id> and order-<id>-steps of orders {old}" \
        in away.stdout
    with Session(engine) as s:
        assert s.get(OrderRecord, old).customer_email is None  # type: ignore[union-attr]
    assert pending(engine) == {(old, "s3"), (old, "prefect")}
    assert f"labels/{old}.pdf" in keys(admin, name)

    # Any later forget (here of someone else) finishes them; the values come from the kept invoice.
    back = cli("forget", "nobody@example.fi", data=data_dir, db_url=sqlite_url, PREFECT_API_URL=prefect_api,
               **s3_env(retention_moto.url, name))

    assert back.returncode == 0, back.stderr
    assert "removed: 1 label objects and 1 cached step results in S3" in back.stdout, back.stdout
    assert "removed: 3 of 3 Prefect artifact versions of 1 orders rewritten" in back.stdout, back.stdout
    assert keys(admin, name) == {"invoices/2026-000200.pdf"}
    for version in artifact_versions(prefect_api, artifact_key(old), steps_table_key(old)):
        assert leftovers(str(version["data"]), NAME, COMPANY, "aino@example.fi") == [], version["data"]
    assert pending(engine) == set()
