"""Two receivers and two workers, each with its own data dir (as on separate machines), sharing
one Prefect server and one Postgres and one S3 bucket (moto); one worker is killed mid-burst.

Every order is still fulfilled exactly once, and the killed worker's runs, finished by the
other worker, skip the steps they had completed: the step cache lives in the bucket.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import boto3
import httpx
import pytest
from sqlalchemy import select
from sqlmodel import Session

from orderpipe.db import get_engine
from orderpipe.stripe_api.standin.events import order_event, signed_delivery
from orderpipe.tables import OrderStep, RunLease
from tests.integration.test_worker_runtime import _assert_each_once, _hold_callbacks, _in_flight_at_shop
from tests.prefect_server import prefect_database, prefect_server
from tests.standins.mailgun import MailgunStandIn
from tests.standins.s3 import MotoS3
from tests.standins.shop_callback import ShopCallbackStandIn
from tests.standins.stripe import running_standin
from tests.worker_stack import MAILGUN_DOMAIN, MAILGUN_KEY, SECRET, RuntimeWorld

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(420)]
REGION = "eu-north-1"


@pytest.fixture
def world(postgres_url: str, tmp_path: Path) -> Iterator[tuple[RuntimeWorld, object, str]]:
    with ExitStack() as stack:
        api = stack.enter_context(prefect_server(tmp_path / "prefect", stack.enter_context(prefect_database())))
        stripe_base, store = stack.enter_context(running_standin())
        mailgun = stack.enter_context(MailgunStandIn(api_key=MAILGUN_KEY, domain=MAILGUN_DOMAIN))
        s3 = stack.enter_context(MotoS3())
        bucket = f"orderpipe-{uuid.uuid4().hex[:10]}"
        creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret", "AWS_REGION": REGION}
        admin = boto3.client("s3", endpoint_url=s3.url, region_name=REGION,
                             aws_access_key_id="testing", aws_secret_access_key="testing-secret")
        admin.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        shop = stack.enter_context(ShopCallbackStandIn())
        w = RuntimeWorld(tmp_path / "machines", postgres_url, api, stripe_base, store, mailgun, extra_env={
            "ORDERPIPE_FILE_STORE": "s3", "ORDERPIPE_S3_BUCKET": bucket, "AWS_ENDPOINT_URL_S3": s3.url, **creds,
            "ORDERPIPE_STATUS_CALLBACK_URL": shop.callback_url, "ORDERPIPE_STATUS_CALLBACK_SECRET": shop.secret})
        w.shop = shop  # type: ignore[attr-defined]
        stack.callback(w.stop_all)
        yield w, admin, bucket


def _post(receiver: str, store: object, order_id: str, event_type: str) -> str:
    event = order_event(store, order_id, event_type, delivered=True)  # type: ignore[arg-type]
    body, headers = signed_delivery(event, SECRET)
    return str(httpx.post(f"{receiver}/webhooks/stripe", content=body, headers=headers, timeout=30).json()["status"])


def _keys(admin: object, bucket: str, prefix: str) -> list[str]:
    listing = admin.list_objects_v2(Bucket=bucket, Prefix=prefix)  # type: ignore[attr-defined]
    return [o["Key"] for o in listing.get("Contents", [])]


def test_two_workers_two_receivers_one_worker_killed_mid_burst_each_order_once(
        world: tuple[RuntimeWorld, object, str]) -> None:
    w, admin, bucket = world
    _, rx_a = w.start_receiver("receiver-a")
    _, rx_b = w.start_receiver("receiver-b")
    worker_a = w.start_worker("worker-a", ORDERPIPE_RUN_LIMIT="4")
    worker_b = w.start_worker("worker-b", ORDERPIPE_RUN_LIMIT="4")
    first, later = w.new_orders("TwoMachinesA", 8), w.new_orders("TwoMachinesB", 4)
    _hold_callbacks(w, 8, seconds=15)  # every run of the first wave waits at its status callback
    for i, order_id in enumerate(first):  # each order's two events reach different receivers
        one, other = (rx_a, rx_b) if i % 2 else (rx_b, rx_a)
        assert _post(one, w.store, order_id, "checkout.session.completed") == "accepted"
        assert _post(other, w.store, order_id, "payment_intent.succeeded") == "duplicate"
    w.wait(lambda: _in_flight_at_shop(w) == 8, 120, f"first wave never reached the callback: {w.states(first)}")
    engine = get_engine(w.db_url)
    with Session(engine) as s:
        held_by_a = s.scalars(select(RunLease.order_id).where(RunLease.worker == "worker-a")).all()
    assert len(held_by_a) == 4  # both workers took their share
    w.kill(worker_a)  # mid-burst: its four runs die at the status callback
    for i, order_id in enumerate(later):
        assert _post(rx_a if i % 2 else rx_b, w.store, order_id, "checkout.session.completed") == "accepted"

    took = w.wait_completed(first + later, timeout=150)
    print(f"12 orders complete {took:.1f} s after worker-a was killed")
    _assert_each_once(w, first + later)
    with Session(engine) as s:
        steps = s.scalars(select(OrderStep).where(OrderStep.order_id.in_(held_by_a))).all()  # type: ignore[attr-defined]
    redone = [(st.order_id, st.step) for st in steps
              if st.step in ("crm", "production_log", "shipment", "invoice", "email") and st.attempts != 1]
    assert redone == []  # worker-b found worker-a's results in the bucket
    labels = _keys(admin, bucket, "labels/")
    invoices = _keys(admin, bucket, "invoices/")
    assert len(labels) == 12 and len(invoices) == 24  # one label, one PDF and one XML invoice each
    assert _keys(admin, bucket, "prefect-results/")  # the step cache is in the bucket
    for d in ("worker-a", "worker-b"):  # and nothing of it on either machine's disk
        assert not list((w.root / d).rglob("labels/*.pdf")) and not list((w.root / d).rglob("invoices/*.xml"))
    assert worker_b.proc.poll() is None
    assert os.environ.get("ORDERPIPE_TEST_DATABASE_URL")
