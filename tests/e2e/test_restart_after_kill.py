"""A power cut in the middle of a burst: `kill -9` of everything `orderpipe up` started, then
`orderpipe up` again on the same data dir. Every order is finished, each exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlmodel import Session

from orderpipe.db import get_engine
from orderpipe.orders import ledger
from orderpipe.stripe_api.standin import DEFAULT_API_KEY, StandinServer, StandinStore, seed_store
from orderpipe.stripe_api.standin.events import order_event, signed_delivery
from orderpipe.stripe_api.standin.samples import FI_CONSUMER, clone_order
from orderpipe.tables import EmailSent, Invoice, Shipment
from tests.conftest import REPO, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(420)]
SECRET = "whsec_e2e_restart"


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def _up(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "ab")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "orderpipe.cli", "up"], env=env, cwd=REPO, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    out.close()
    deadline = time.monotonic() + 180
    while log.read_text().count("orderpipe is up") < _up.starts + 1:  # type: ignore[attr-defined]
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"orderpipe up did not start: {log.read_text()[-3000:]}")
        time.sleep(0.3)
    _up.starts += 1  # type: ignore[attr-defined]
    return proc


def _explain(engine: object, api: str, orders: list[str]) -> list[tuple[object, ...]]:
    """Every unfinished order: its ledger state, dispatch state and error, and its runs' states."""
    runs = httpx.post(f"{api}/flow_runs/filter", json={"flow_runs": {"name": {"any_": [
        f"order-{o}" for o in orders]}}, "limit": 100}).json()
    by_name: dict[str, list[str]] = {}
    for r in runs:
        by_name.setdefault(r["name"], []).append(f"{r['id']}:{r['state_type']}/{r['state_name']}")
    out = []
    for o in orders:
        row = ledger.get_order(engine, o)  # type: ignore[arg-type]
        runs_of = by_name.get(f"order-{o}", [])
        if row is None or row.state != "completed" or not any(":COMPLETED/" in r for r in runs_of):
            out.append((o, row and row.state, row and row.dispatch, row and row.flow_run_id,
                        row and row.last_error, runs_of))
    return out


@pytest.mark.xfail(strict=False, reason="known bug, under investigation: once in 4 runs (fresh clone, loaded machine) "
                   "one order stayed 'received' after the restart - a kill between creating its run and "
                   "recording the dispatch is the suspect")
def test_kill_9_of_the_whole_stack_mid_burst_then_up_again_finishes_every_order_once(tmp_path: Path) -> None:
    _up.starts = 0  # type: ignore[attr-defined]
    data_dir = tmp_path / "data"
    store = StandinStore(api_key=DEFAULT_API_KEY)
    seed_store(store)
    standin = StandinServer(store).start()
    port, prefect_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ORDERPIPE_", "DATABASE_URL"))}
    env.update({"ORDERPIPE_DATA_DIR": str(data_dir), "ORDERPIPE_PORT": str(port),
                "PREFECT_SERVER_API_PORT": str(prefect_port), "STRIPE_API_BASE": standin.url,
                "STRIPE_API_KEY": DEFAULT_API_KEY, "STRIPE_WEBHOOK_SECRET": SECRET, "ORDERPIPE_NO_UI": "1",
                "PREFECT_LOGGING_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
                # the killed worker's runs are taken over once its lease stops beating: 8 s
                # here, as in the worker tests (default 30 s), so the test does not sit out 30
                "ORDERPIPE_LEASE_SECONDS": "8"})
    log = tmp_path / "up.log"
    orders = [clone_order(store, FI_CONSUMER, f"pi_3E2eRestart{i:07d}") for i in range(20)]
    proc = _up(env, log)
    try:
        with httpx.Client(timeout=30) as http:
            for order_id in orders:
                body, headers = signed_delivery(order_event(store, order_id, "checkout.session.completed",
                                                            delivered=True), SECRET)
                assert http.post(f"http://127.0.0.1:{port}/webhooks/stripe", content=body,
                                 headers=headers).json()["status"] == "accepted"
        engine = get_engine(f"sqlite:///{data_dir / 'orderpipe.db'}")
        deadline = time.monotonic() + 60  # kill once the burst is under way, well before it is done
        while sum(1 for o in orders if (ledger.get_order(engine, o) or ledger).state == "completed") < 3:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.1)
        everything = _descendants(proc.pid)
        for pid in everything:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=10)
        done_at_kill = sum(1 for o in orders if (ledger.get_order(engine, o) or ledger).state == "completed")  # type: ignore[union-attr]
        assert done_at_kill < len(orders), "the burst finished before the kill; nothing was tested"

        proc = _up(env, log)
        up_at = time.monotonic()
        api = f"http://127.0.0.1:{prefect_port}/api"

        def run_states() -> set[str]:
            return {r["state_type"] for r in httpx.post(f"{api}/flow_runs/filter", json={"flow_runs": {"name": {
                "any_": [f"order-{o}" for o in orders]}}, "limit": 100}).json()}

        while ({(ledger.get_order(engine, o) or ledger).state for o in orders} != {"completed"}  # type: ignore[union-attr]
               or run_states() != {"COMPLETED"}):
            assert time.monotonic() - up_at < 120, (
                f"not finished 2 minutes after restart: {_explain(engine, api, orders)}"
                f"\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        print(f"{len(orders) - done_at_kill} interrupted orders finished {time.monotonic() - up_at:.1f} s "
              "after the restart")
        with Session(engine) as s:
            for model in (Shipment, Invoice, EmailSent):
                rows = s.scalars(select(model.order_id)).all()  # type: ignore[attr-defined]
                assert sorted(rows) == sorted(orders), model.__name__
            seqs = sorted(s.scalars(select(Invoice.seq)).all())
        assert seqs == list(range(1, len(orders) + 1))
        assert len(list((data_dir / "labels").glob("*.pdf"))) == len(orders)
        assert len(list((data_dir / "outbox").glob("*.eml"))) == len(orders)
        runs = httpx.post(f"{api}/flow_runs/filter", json={"flow_runs": {"name": {"any_": [
            f"order-{o}" for o in orders]}}, "limit": 100}).json()
        assert len(runs) == len(orders) and {r["state_type"] for r in runs} == {"COMPLETED"}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                for pid in _descendants(proc.pid):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        standin.stop()
