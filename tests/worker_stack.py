"""orderpipe's roles as real subprocesses for runtime tests: a Prefect server, workers, receivers.

`RuntimeWorld` holds what they share (orderpipe's database, Prefect's API, the Stripe
stand-in, a Mailgun stand-in the tests slow down or break on purpose) and starts
`orderpipe worker` / `orderpipe receiver` processes with it, as an operator would on
separate machines (each with its own data dir). Everything it starts it stops.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from sqlmodel import Session

from orderpipe.db import get_engine
from orderpipe.orders import ledger
from orderpipe.stripe_api.standin import DEFAULT_API_KEY, StandinStore
from orderpipe.stripe_api.standin.samples import FI_CONSUMER, clone_order
from tests.conftest import REPO, free_port
from tests.standins.mailgun import MailgunStandIn

MAILGUN_KEY, MAILGUN_DOMAIN = "key-runtime-0123456789", "mg.example.fi"
SECRET = "whsec_runtime_tests"


@dataclass
class Proc:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:]


@dataclass
class RuntimeWorld:
    root: Path
    db_url: str
    api: str
    stripe_base: str
    store: StandinStore
    mailgun: MailgunStandIn
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)

    def env(self, name: str, machine: str | None = None, **more: str) -> dict[str, str]:
        """The environment of one process; `machine` names its data dir (default: its own)."""
        data_dir = self.root / (machine or name)
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "ORDERPIPE_", "DATABASE_URL"))}
        env.update({
            "DATABASE_URL": self.db_url, "ORDERPIPE_DATA_DIR": str(data_dir), "PREFECT_API_URL": self.api,
            "STRIPE_API_BASE": self.stripe_base, "STRIPE_API_KEY": DEFAULT_API_KEY, "STRIPE_WEBHOOK_SECRET": SECRET,
            "ORDERPIPE_EMAIL": "mailgun", "MAILGUN_API_KEY": MAILGUN_KEY, "MAILGUN_DOMAIN": MAILGUN_DOMAIN,
            "MAILGUN_TEMPLATE": "order-confirmation", "MAILGUN_API_BASE": self.mailgun.url,
            "ORDERPIPE_LEASE_SECONDS": "8", "ORDERPIPE_POLL_SECONDS": "0.25", "PREFECT_LOGGING_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1", **self.extra_env, **more,
        })
        return env

    def _start(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        log = self.root / f"{name}.log"
        out = open(log, "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        out.close()
        p = Proc(name, proc, log)
        self.procs.append(p)
        return p

    def start_worker(self, name: str = "worker-a", machine: str | None = None, **env: str) -> Proc:
        p = self._start(name, [sys.executable, "-m", "orderpipe.cli", "worker"],
                        self.env(name, machine, ORDERPIPE_WORKER_NAME=name, **env))
        self.wait(lambda: self._deployed(), 90, f"{name} did not deploy: {p.tail()}", p)
        return p

    def start_receiver(self, name: str = "receiver-a") -> tuple[Proc, str]:
        port = free_port()
        p = self._start(name, [sys.executable, "-m", "orderpipe.cli", "receiver"],
                        self.env(name, ORDERPIPE_PORT=str(port), ORDERPIPE_RECEIVER_WORKERS="1"))
        url = f"http://127.0.0.1:{port}"
        self.wait(lambda: _ok(url + "/healthz"), 60, f"{name} did not start: {p.tail()}", p)
        return p, url

    def _deployed(self) -> bool:
        return _ok(f"{self.api}/deployments/name/process-order/orderpipe")

    @staticmethod
    def wait(cond: Callable[[], Any], timeout: float, message: str, proc: Proc | None = None) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = cond()
            if value:
                return value
            if proc is not None and proc.proc.poll() is not None:
                raise AssertionError(f"{proc.name} exited {proc.proc.returncode}: {proc.tail()}")
            time.sleep(0.2)
        raise AssertionError(message)

    def kill(self, p: Proc) -> None:
        """kill -9, as a power cut would."""
        os.kill(p.proc.pid, signal.SIGKILL)
        p.proc.wait(timeout=10)

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            if p.proc.poll() is None:
                os.killpg(p.proc.pid, signal.SIGTERM)
                try:
                    p.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(p.proc.pid, signal.SIGKILL)
                    p.proc.wait()
        self.procs.clear()

    # ---- orders and what happened to them -------------------------------------------
    def new_orders(self, prefix: str, n: int, source: str = FI_CONSUMER) -> list[str]:
        return [clone_order(self.store, source, f"pi_3{prefix}{i:08d}") for i in range(n)]

    def record(self, order_ids: list[str]) -> None:
        engine = get_engine(self.db_url)
        for order_id in order_ids:
            assert ledger.record_missing_order(engine, order_id, source=f"test:{order_id}")

    def states(self, order_ids: list[str]) -> dict[str, str]:
        engine = get_engine(self.db_url)
        out = {}
        for order_id in order_ids:
            row = ledger.get_order(engine, order_id)
            out[order_id] = row.state if row else "missing"
        return out

    def wait_completed(self, order_ids: list[str], timeout: float) -> float:
        start = time.monotonic()
        self.wait(lambda: set(self.states(order_ids).values()) == {"completed"}, timeout,
                  f"not all completed in {timeout} s: {self.states(order_ids)}\n"
                  + "\n".join(p.tail(1500) for p in self.procs))
        # The ledger says "completed" from inside the run (before its status callback);
        # Prefect's Completed state follows when the engine finishes.
        names = [f"order-{o}" for o in order_ids]
        self.wait(lambda: {r["state_type"] for r in self.runs(name={"any_": names})} == {"COMPLETED"},
                  max(30.0, timeout - (time.monotonic() - start)),
                  f"runs not Completed: {[(r['name'], r['state_type']) for r in self.runs(name={'any_': names})]}")
        return time.monotonic() - start

    def runs(self, **flow_run_filter: Any) -> list[dict[str, Any]]:
        body = {"flow_runs": flow_run_filter} if flow_run_filter else {}
        return httpx.post(f"{self.api}/flow_runs/filter", json={**body, "limit": 200}, timeout=10).json()

    def running_count(self) -> int:
        return len(self.runs(state={"type": {"any_": ["RUNNING"]}}))

    def count(self, model: type, **where: Any) -> int:
        with Session(get_engine(self.db_url)) as s:
            q = select(func.count()).select_from(model)
            for k, v in where.items():
                q = q.where(getattr(model, k) == v)
            return int(s.scalar(q) or 0)

    def emails_sent_to_mailgun(self) -> int:
        return len(self.mailgun.messages)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
