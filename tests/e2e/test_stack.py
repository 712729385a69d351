"""End to end: `orderpipe up` in a subprocess, the Stripe stand-in, real HTTP deliveries."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from orderpipe.db import get_engine
from orderpipe.orders import ledger
from orderpipe.stripe_api.standin import DEFAULT_API_KEY, SAMPLE_ORDER_IDS, StandinServer, StandinStore, seed_store
from orderpipe.stripe_api.standin.events import order_event, signed_delivery
from orderpipe.stripe_api.standin.samples import FI_CONSUMER, SE_CUSTOMER
from orderpipe.tables import CrmDeal, EmailSent, Invoice, Shipment
from tests.conftest import REPO, free_port
from tests.en16931 import load_fatal_rules
from tests.flow_env import add_order_copy

pytestmark = pytest.mark.e2e
SECRET = "whsec_e2e_secret"


@dataclass
class RunningStack:
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    data_dir: Path
    receiver: str
    api: str
    store: StandinStore
    log: Path

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.data_dir / 'orderpipe.db'}"

    def deliver(self, order_id: str, event_type: str, client: httpx.Client | None = None,
                event: dict | None = None) -> httpx.Response:
        event = event or order_event(self.store, order_id, event_type, delivered=True)
        body, headers = signed_delivery(event, SECRET)
        return (client or httpx).post(f"{self.receiver}/webhooks/stripe", content=body, headers=headers, timeout=30)

    def wait_final(self, order_id: str, timeout: float = 180) -> str:
        engine = get_engine(self.db_url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            row = ledger.get_order(engine, order_id)
            if row is not None and row.state in ("completed", "failed"):
                return row.state
            if self.proc.poll() is not None:
                raise AssertionError(f"orderpipe up died: {self.log.read_text()[-3000:]}")
            time.sleep(0.3)
        raise AssertionError(f"order {order_id} not finished in {timeout} s")

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "orderpipe.cli", *args], env=self.env, cwd=REPO,
                              capture_output=True, text=True, timeout=240)

    def count(self, model: type, **where: str) -> int:
        with Session(get_engine(self.db_url)) as s:
            q = select(func.count()).select_from(model)
            for k, v in where.items():
                q = q.where(getattr(model, k) == v)
            return int(s.scalar(q) or 0)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    data_dir = tmp_path_factory.mktemp("e2e") / "data"
    store = StandinStore(api_key=DEFAULT_API_KEY)
    seed_store(store)
    standin = StandinServer(store).start()
    port, prefect_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ORDERPIPE_", "DATABASE_URL"))}
    env.update({
        "ORDERPIPE_DATA_DIR": str(data_dir), "ORDERPIPE_PORT": str(port), "PREFECT_SERVER_API_PORT": str(prefect_port),
        "STRIPE_API_BASE": standin.url, "STRIPE_API_KEY": DEFAULT_API_KEY, "STRIPE_WEBHOOK_SECRET": SECRET,
        "ORDERPIPE_NO_UI": "1", "PREFECT_LOGGING_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
        # run processes reused end to end (SQLite's default is a fresh one per run: the
        # Prefect server's SQLite locks under a burst of reused ones; 8 orders are no burst)
        "ORDERPIPE_RUNS_PER_PROCESS": "3",
    })
    log = data_dir.parent / "up.log"
    out = open(log, "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "orderpipe.cli", "up"], env=env, cwd=REPO, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    running = RunningStack(proc, env, data_dir, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{prefect_port}/api",
                           store, log)
    try:
        deadline = time.monotonic() + 180
        while "orderpipe is up" not in log.read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"orderpipe up did not start: {log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        out.close()
        standin.stop()


def test_sample_orders_complete(stack: RunningStack) -> None:
    for order_id in SAMPLE_ORDER_IDS:
        first = "checkout.session.completed" if stack.store.session_for(order_id) else "payment_intent.succeeded"
        assert stack.deliver(order_id, first).json()["status"] == "accepted"
    for order_id in SAMPLE_ORDER_IDS:
        assert stack.wait_final(order_id) == "completed", stack.cli("status", order_id).stdout
    status = json.loads(stack.cli("status", FI_CONSUMER, "--json").stdout)
    assert status["state"] == "completed" and set(status["steps"].values()) == {"completed"}
    assert status["ui_url"].startswith(stack.api.removesuffix("/api") + "/runs/flow-run/")
    assert status["currency"] == "eur" and status["amount_total"] == 8735
    assert (stack.data_dir / "labels" / f"{FI_CONSUMER}.pdf").exists()
    assert (stack.data_dir / "invoices" / f"{status['invoice_number']}.xml").exists()
    assert (stack.data_dir / "outbox" / f"{FI_CONSUMER}.eml").exists()
    assert stack.cli("status", "pi_unknown", "--json").returncode == 2
    fatal_rules = load_fatal_rules()
    invoices = sorted((stack.data_dir / "invoices").glob("*.xml"))
    assert len(invoices) == len(SAMPLE_ORDER_IDS)
    for xml in invoices:
        assert fatal_rules(xml) == [], xml.name
    # 8 orders, at most 4 at a time, 3 per process: some run process served more than one
    served = re.findall(r"order-\S+: exit 0 after .* CPU-s \(run process (\d+)\)",
                        (stack.data_dir / "logs" / "worker.log").read_text())
    assert len(served) >= len(SAMPLE_ORDER_IDS) and len(set(served)) < len(served), served


def test_twenty_concurrent_deliveries_and_a_sibling_give_one_run_and_one_email(stack: RunningStack) -> None:
    order_id = add_order_copy(stack.store, FI_CONSUMER, "pi_3E2eConcurrent00001")
    event = order_event(stack.store, order_id, "checkout.session.completed", delivered=True)
    sibling = order_event(stack.store, order_id, "payment_intent.succeeded", delivered=True)
    answers: list[str] = []

    def send(i: int) -> None:
        with httpx.Client() as client:
            answers.append(stack.deliver(order_id, "", client, event=sibling if i == 20 else event).json()["status"])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(21)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers.count("accepted") == 1 and answers.count("duplicate") == 20
    assert stack.wait_final(order_id) == "completed"
    runs = httpx.post(f"{stack.api}/flow_runs/filter",
                      json={"flow_runs": {"name": {"any_": [f"order-{order_id}"]}}}).json()
    assert len(runs) == 1
    assert stack.count(EmailSent, order_id=order_id) == 1
    assert len(list((stack.data_dir / "outbox").glob(f"{order_id}*.eml"))) == 1


def test_payment_intent_before_checkout_session(stack: RunningStack) -> None:
    order_id = add_order_copy(stack.store, SE_CUSTOMER, "pi_3E2ePiFirst00000001")
    assert stack.deliver(order_id, "payment_intent.succeeded").json()["status"] == "accepted"
    assert stack.deliver(order_id, "checkout.session.completed").json()["status"] == "duplicate"
    assert stack.wait_final(order_id) == "completed"


def test_failed_step_then_replay_completes_without_duplicates(stack: RunningStack) -> None:
    order_id = add_order_copy(stack.store, SE_CUSTOMER, "pi_3E2eReplay000000001", drop_shipping=True)
    assert stack.deliver(order_id, "checkout.session.completed").json()["status"] == "accepted"
    assert stack.wait_final(order_id) == "failed"
    before = json.loads(stack.cli("status", order_id, "--json").stdout)
    assert before["steps"]["shipment"] == "failed" and before["steps"]["invoice"] == "completed"
    assert before["steps"]["crm"] == "completed"

    session = stack.store.session_for(order_id)
    assert session is not None
    session["collected_information"] = {"shipping_details": {"name": "Åsa Öberg-Ståhl", "address": {
        "line1": "Storgatan 5", "line2": None, "postal_code": "11451", "city": "Stockholm", "state": None,
        "country": "SE"}}}
    replay = stack.cli("replay", order_id)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    after = json.loads(stack.cli("status", order_id, "--json").stdout)
    assert after["state"] == "completed" and after["invoice_number"] == before["invoice_number"]
    assert stack.count(Invoice, order_id=order_id) == 1 and stack.count(CrmDeal, order_id=order_id) == 1
    assert stack.count(Shipment, order_id=order_id) == 1 and stack.count(EmailSent, order_id=order_id) == 1


def test_edge_answers_over_real_http(stack: RunningStack) -> None:
    r = httpx.post(f"{stack.receiver}/webhooks/stripe", content=b"{}", headers={"Stripe-Signature": "t=1,v1=00"})
    assert r.status_code == 400 and "error" in r.json()
    health = httpx.get(f"{stack.receiver}/healthz").json()
    assert health == {"status": "ok", "database": "ok", "prefect": "ok"}


def test_reconcile_starts_what_the_webhooks_missed(stack: RunningStack) -> None:
    order_id = add_order_copy(stack.store, FI_CONSUMER, "pi_3E2eMissedWebhook01")
    order_event(stack.store, order_id, "checkout.session.completed", delivered=False)  # never delivered
    r = stack.cli("reconcile", "--since", "2h")
    assert r.returncode == 0, r.stdout + r.stderr
    assert order_id in r.stdout and "orders started" in r.stdout
    assert stack.wait_final(order_id) == "completed"
    again = stack.cli("reconcile", "--since", "2h")
    assert again.returncode == 0 and order_id not in again.stdout  # nothing twice


def test_reconcile_retries_a_failed_run_in_place(stack: RunningStack) -> None:
    order_id = add_order_copy(stack.store, SE_CUSTOMER, "pi_3E2eReconcileRetry1", drop_shipping=True)
    assert stack.deliver(order_id, "checkout.session.completed").json()["status"] == "accepted"
    assert stack.wait_final(order_id) == "failed"
    run_id = json.loads(stack.cli("status", order_id, "--json").stdout)["flow_run_id"]
    session = stack.store.session_for(order_id)
    assert session is not None
    session["collected_information"] = {"shipping_details": {"name": "Åsa Öberg-Ståhl", "address": {
        "line1": "Storgatan 5", "line2": None, "postal_code": "11451", "city": "Stockholm", "state": None,
        "country": "SE"}}}
    r = stack.cli("reconcile", "--since", "2h")
    assert r.returncode == 0 and order_id in r.stdout and "runs retried" in r.stdout, r.stdout
    assert stack.wait_final(order_id) == "completed"
    after = json.loads(stack.cli("status", order_id, "--json").stdout)
    assert after["flow_run_id"] == run_id  # the same run, never a second fulfilment
    assert stack.count(Invoice, order_id=order_id) == 1 and stack.count(EmailSent, order_id=order_id) == 1


def test_check_reports_every_configured_connector(stack: RunningStack) -> None:
    r = stack.cli("check")
    assert r.returncode == 0, r.stdout + r.stderr
    for role in ("stripe", "crm", "production_log", "shipping", "invoicing", "email", "alerts"):
        assert any(line.startswith(role) and line.rstrip().endswith("ok") for line in r.stdout.splitlines()), r.stdout


def test_sigterm_stops_everything_and_exits_zero(stack: RunningStack) -> None:
    """Runs last in this module: a clean shutdown of all the stack started."""
    stack.proc.send_signal(signal.SIGTERM)
    assert stack.proc.wait(timeout=60) == 0
    for url in (f"{stack.receiver}/healthz", f"{stack.api}/health"):
        with pytest.raises(httpx.TransportError):
            httpx.get(url, timeout=2)
    assert "stopped" in stack.log.read_text()
