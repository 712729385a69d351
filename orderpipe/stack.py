"""`orderpipe up`: the Prefect server (unless PREFECT_API_URL is set), one `orderpipe worker`
(deployments, executor, dispatcher) and `orderpipe receiver`; Ctrl-C stops them all, in order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from orderpipe.db import migrate
from orderpipe.prefect_env import (
    SERVER_ENV,
    api_url,
    base_env,
    prefect_database_url,
    prefect_home,
    ui_url,
)
from orderpipe.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]


class StartupError(RuntimeError):
    """Something the stack needs did not come up; the message says what and where to look."""


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path


@dataclass
class Stack:
    settings: Settings
    children: list[Child] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    @property
    def logs_dir(self) -> Path:
        return self.settings.data_dir / "logs"

    def _spawn(self, name: str, argv: list[str], extra_env: dict[str, str] | None = None) -> Child:
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / f"{name}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
        env = {**os.environ, **self.env, **(extra_env or {})}
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(REPO_ROOT),
                                start_new_session=True)
        log.close()
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    def _wait_http(self, child: Child | None, url: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if child is not None and child.proc.poll() is not None:
                raise StartupError(f"{child.name} exited with {child.proc.returncode}; see {child.log_path}")
            try:
                if httpx.get(url, timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        where = f"; see {child.log_path}" if child else ""
        raise StartupError(f"{url} did not answer within {timeout:.0f} s{where}")

    def start(self, *, quiet: bool = False) -> None:
        s = self.settings
        s.require_webhook_secret()
        s.require_stripe_key()
        s.data_dir.mkdir(parents=True, exist_ok=True)
        prefect_home(s).mkdir(parents=True, exist_ok=True)
        migrate(s.db_url)
        self.env = base_env(s)
        say = (lambda *_a: None) if quiet else (lambda msg: print(msg, flush=True))

        if not s.prefect_api_url:
            # an operator's own PREFECT_SERVER_* value (e.g. the event persister back on) wins
            server_env: dict[str, str] = {k: v for k, v in SERVER_ENV.items() if k not in os.environ}
            pg = prefect_database_url(s)
            if pg:
                _ensure_postgres_database(s.db_url)
                server_env["PREFECT_API_DATABASE_CONNECTION_URL"] = pg
            server = self._spawn("prefect-server", [
                sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                "--port", str(s.prefect_server_api_port), "--no-ui" if os.environ.get("ORDERPIPE_NO_UI") else "--ui",
            ], server_env)
            self._wait_http(server, api_url(s) + "/health", timeout=90)
            say(f"prefect server  {ui_url(s)}  (API {api_url(s)}; log {server.log_path})")
        else:
            self._wait_http(None, api_url(s) + "/health", timeout=30)
            say(f"prefect server  {ui_url(s)}  (external)")

        worker = self._spawn("worker", [sys.executable, "-m", "orderpipe.cli", "worker"])
        self._wait_deployments(worker, timeout=60)
        say(f"worker          pool {s.orderpipe_work_pool}: process-order/orderpipe, process-refund/orderpipe, "
            "reconcile/orderpipe "
            f"(limit {s.orderpipe_run_limit}, poll {s.orderpipe_poll_seconds}s; log {worker.log_path})")

        bind = f"{s.orderpipe_host}:{s.orderpipe_port}"
        receiver = self._spawn("receiver", [sys.executable, "-m", "orderpipe.cli", "receiver"])
        self._wait_http(receiver, f"http://{bind}/healthz", timeout=30)
        say(f"receiver        http://{bind}/webhooks/stripe  (health http://{bind}/healthz; log {receiver.log_path})")

    def _wait_deployments(self, runner: Child, timeout: float) -> None:
        self._wait_http(runner, api_url(self.settings) + "/deployments/name/process-order/orderpipe", timeout)

    def alive(self) -> Child | None:
        """The first child that died, if any."""
        for child in self.children:
            if child.proc.poll() is not None:
                return child
        return None

    def stop(self) -> None:
        """Newest first, each before the next: the receiver (no new events), the worker (drains
        its running flow runs, at most ORDERPIPE_DRAIN_SECONDS), then the Prefect server."""
        grace = {"worker": self.settings.orderpipe_drain_seconds + 20}
        for child in reversed(self.children):
            if child.proc.poll() is None:
                try:
                    os.killpg(child.proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            try:
                child.proc.wait(timeout=grace.get(child.name, 15))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(child.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                child.proc.wait(timeout=5)
            try:  # nothing of its process group may outlive it
                os.killpg(child.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.children.clear()


def _ensure_postgres_database(db_url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    url = make_url(db_url)
    name = f"{url.database}_prefect"
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()


def run_up(settings: Settings) -> int:
    """Foreground: start everything, wait for SIGINT/SIGTERM or a dead child, stop everything."""
    stack = Stack(settings)
    stopping = {"signal": None}

    def on_signal(signum: int, _frame: object) -> None:
        stopping["signal"] = signum  # type: ignore[assignment]

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        stack.start()
        print("orderpipe is up; Ctrl-C stops it", flush=True)
        while stopping["signal"] is None:
            dead = stack.alive()
            if dead is not None:
                print(f"{dead.name} exited with {dead.proc.returncode}; stopping (see {dead.log_path})",
                      file=sys.stderr, flush=True)
                return 1
            time.sleep(0.3)
        print("stopping...", flush=True)
        return 0
    except StartupError as exc:
        print(f"orderpipe up: {exc}", file=sys.stderr, flush=True)
        return 1
    finally:
        stack.stop()
        print("stopped", flush=True)
