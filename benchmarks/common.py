"""Shared helpers: percentiles, progress line, ports, scratch Postgres databases, processes,
and reading flow runs back from the Prefect REST API (plain httpx, no Prefect client)."""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from benchmarks import procstats
from orderpipe.progress import CountProgress

REPO_ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
FINAL = ["COMPLETED", "FAILED", "CRASHED", "CANCELLED"]


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_ts(text: str | None) -> float | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


# One bar on a terminal (rich), a plain line every 10 s otherwise (CI logs): see orderpipe/progress.py.
Progress = CountProgress


def say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- scratch Postgres databases -------------------------------------------------------------

class ScratchPostgres:
    """CREATE/DROP databases named bench_* on one server (psycopg, autocommit)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")  # postgresql+psycopg://user@host:port
        self.created: list[str] = []

    def _conn(self) -> Any:
        import psycopg

        return psycopg.connect(self.base_url.replace("+psycopg", "") + "/postgres", autocommit=True,
                               connect_timeout=5)

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name}"

    def create(self, name: str) -> str:
        assert name.startswith("bench_"), name
        with self._conn() as c:
            c.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.url(name)

    def track(self, name: str) -> None:
        """A database someone else creates (orderpipe's <db>_prefect): dropped at the end too."""
        assert name.startswith("bench_"), name
        self.created.append(name)

    def size(self, name: str) -> int | None:
        with self._conn() as c:
            row = c.execute("SELECT pg_database_size(%s)", (name,)).fetchone()
        return int(row[0]) if row else None

    def drop_all(self) -> None:
        for name in reversed(self.created):
            try:
                with self._conn() as c:
                    c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            except Exception as exc:  # noqa: BLE001 - report and go on dropping the others
                say(f"could not drop database {name}: {exc}")
        self.created.clear()


# --- processes ------------------------------------------------------------------------------

class Launched:
    """A subprocess in its own session, output to a log file (optionally watched for a line)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path,
                 cwd: Path = REPO_ROOT, watch: str | None = None) -> None:
        self.name, self.log_path = name, log_path
        self.ready = threading.Event()
        self._watch = watch
        self.proc = subprocess.Popen(argv, env=env, cwd=str(cwd), stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self._pump = threading.Thread(target=self._copy, name=f"log-{name}", daemon=True)
        self._pump.start()
        self.known: set[tuple[int, int]] = set()  # every descendant seen, to make sure all are gone

    def _copy(self) -> None:
        assert self.proc.stdout is not None
        with open(self.log_path, "ab") as log:
            for line in self.proc.stdout:
                log.write(line)
                log.flush()
                if self._watch and self._watch.encode() in line:
                    self.ready.set()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def remember_tree(self) -> None:
        self.known |= procstats.descendants_ids([self.pid])

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready.wait(0.2):
                self.remember_tree()
                return
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} before it was ready; "
                                   f"log {self.log_path}:\n{tail(self.log_path)}")
        raise RuntimeError(f"{self.name} not ready within {timeout:.0f} s; log {self.log_path}:\n{tail(self.log_path)}")

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM the process (not its group: it stops its own children), wait; then make sure
        every descendant ever seen is gone (SIGTERM, then SIGKILL), by pid."""
        if self.proc.poll() is None:
            self.remember_tree()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                say(f"{self.name} still running {timeout:.0f} s after SIGTERM: SIGKILL")
                self.proc.kill()
                self.proc.wait(timeout=10)
        left = procstats.still_alive(self.known)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in left:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 5
            while left and time.monotonic() < deadline:
                time.sleep(0.2)
                left = procstats.still_alive(self.known)
            if not left:
                break
            say(f"{self.name}: {len(left)} process(es) left behind, sending {sig.name}: {left}")
        self._pump.join(timeout=5)
        return self.proc.returncode


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def wait_http(url: str, timeout: float, proc: Launched | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.proc.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.proc.returncode}; log {proc.log_path}:\n"
                               f"{tail(proc.log_path)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any Prefect or orderpipe database settings, plus extra."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PREFECT_") and k not in ("DATABASE_URL", "ORDERPIPE_DATA_DIR", "ORDERPIPE_PORT",
                                                         "ORDERPIPE_HOST", "VIRTUAL_ENV_PROMPT")}
    env.update(extra)
    return env


# --- the Prefect REST API --------------------------------------------------------------------

class PrefectApi:
    def __init__(self, api_url: str) -> None:
        self.client = httpx.Client(base_url=api_url.rstrip("/") + "/", timeout=30)

    def close(self) -> None:
        self.client.close()

    def runs(self, *, ids: Iterable[str] = (), names: Iterable[str] = (),
             final_only: bool = False) -> list[dict[str, Any]]:
        """Flow runs by id or by name, 200 per request (the server's page limit)."""
        key, values = ("id", list(ids)) if ids else ("name", list(names))
        out: list[dict[str, Any]] = []
        for i in range(0, len(values), 200):
            flt: dict[str, Any] = {key: {"any_": values[i:i + 200]}}
            if final_only:
                flt["state"] = {"type": {"any_": FINAL}}
            r = self.client.post("flow_runs/filter", json={"flow_runs": flt, "limit": 200})
            r.raise_for_status()
            out.extend(r.json())
        return out


def run_result(run: dict[str, Any]) -> dict[str, Any]:
    state = run.get("state") or {}
    return {"id": run["id"], "name": run["name"], "state": state.get("type"), "state_name": state.get("name"),
            "created": parse_ts(run.get("created")), "start": parse_ts(run.get("start_time")),
            "end": parse_ts(run.get("end_time")), "run_count": run.get("run_count")}
