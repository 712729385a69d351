"""The receiver only records; the workers deliver the alert, once (issue 9), as real processes:
`orderpipe receiver` (gunicorn) with a Slack that hangs and no Netvisor credentials at all,
then two `orderpipe worker`s sharing the database, with Slack answering."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest

from orderpipe.alerting.alerts import list_alerts
from orderpipe.db import get_engine
from tests.conftest import free_port
from tests.prefect_server import prefect_database, prefect_server
from tests.signing import event, sign
from tests.standins.mailgun import MailgunStandIn
from tests.standins.slack import SlackStandIn
from tests.standins.stripe import running_standin
from tests.standins.wsgi_thread import Delay
from tests.worker_stack import MAILGUN_DOMAIN, MAILGUN_KEY, SECRET, RuntimeWorld, _ok

pytestmark = pytest.mark.timeout(420)


@pytest.fixture
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RuntimeWorld]:
    """On Postgres (two workers on two machines share one) when it is there, else SQLite; the
    SQLite delivery lock is also covered in-process by test_receiver_faults."""
    postgres = bool(os.environ.get("ORDERPIPE_TEST_DATABASE_URL"))
    db_url = request.getfixturevalue("postgres_url" if postgres else "sqlite_url")
    with ExitStack() as stack:
        prefect_db = stack.enter_context(prefect_database()) if postgres else None
        api = stack.enter_context(prefect_server(tmp_path / "prefect", prefect_db))
        stripe_base, store = stack.enter_context(running_standin())
        mailgun = stack.enter_context(MailgunStandIn(api_key=MAILGUN_KEY, domain=MAILGUN_DOMAIN))
        w = RuntimeWorld(tmp_path / "world", db_url, api, stripe_base, store, mailgun)
        stack.callback(w.stop_all)
        yield w


def test_receiver_records_the_alert_and_two_workers_deliver_it_once(world: RuntimeWorld) -> None:
    with SlackStandIn() as hanging, SlackStandIn() as slack:
        hanging.inject(*[Delay(30) for _ in range(5)])
        port = free_port()
        env = world.env("receiver-a", ORDERPIPE_PORT=str(port), ORDERPIPE_RECEIVER_WORKERS="1",
                        ORDERPIPE_ALERTS="slack", SLACK_WEBHOOK_URL=hanging.webhook_url,
                        ORDERPIPE_INVOICING="netvisor")  # and no NETVISOR_* at all
        receiver = world._start("receiver-a", [sys.executable, "-m", "orderpipe.cli", "receiver"], env)
        url = f"http://127.0.0.1:{port}"
        world.wait(lambda: _ok(url + "/healthz"), 60, f"receiver did not start: {receiver.tail()}", receiver)

        body = event("evt_rt_pf", "payment_intent.payment_failed",
                     {"id": "pi_RTPF", "object": "payment_intent",
                      "last_payment_error": {"message": "Your card was declined."}})
        t0 = time.monotonic()
        r = httpx.post(url + "/webhooks/stripe", content=body, timeout=30,
                       headers={"Stripe-Signature": sign(body, SECRET), "Content-Type": "application/json"})
        assert r.status_code == 200 and r.json()["status"] == "ignored"
        assert time.monotonic() - t0 < 3.0 and hanging.requests == []  # Slack would hold it 30 s

        slack_env = {"ORDERPIPE_ALERTS": "slack", "SLACK_WEBHOOK_URL": slack.webhook_url}
        world.start_worker("worker-a", machine="one", **slack_env)
        world.start_worker("worker-b", machine="one" if world.db_url.startswith("sqlite") else "two", **slack_env)
        world.wait(lambda: len(slack.messages) >= 1, 60, "no worker delivered the alert")
        time.sleep(6)  # a few more dispatcher rounds of both workers
        assert len(slack.messages) == 1 and "declined" in slack.messages[0]["text"]
        [row] = list_alerts(get_engine(world.db_url), "pi_RTPF")
        assert row.delivered
