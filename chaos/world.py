"""The running stack the suite drives, in one of two layouts, with every vendor a stand-in.

- ``one``: ``orderpipe up`` (worker + receiver; the Prefect server is the suite's own, so it
  can be stopped and started again) — the one-machine layout;
- ``two``: two ``orderpipe worker`` and two ``orderpipe receiver`` processes, each with its own
  data dir as on separate machines, ``ORDERPIPE_FILE_STORE=s3`` on moto — the
  "Running on several machines" layout (as tests/integration/test_two_machines.py).

Both use one Postgres database for orderpipe, reached through a TCP proxy the suite can cut,
and a Postgres-backed Prefect server. CRM is Zoho, shipping PostNord, email Mailgun, alerts
Slack (stand-ins in this process); production log and invoicing are orderpipe's own (local).
The suite's own reads of orderpipe's database go around the proxy.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import uuid
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlmodel import Session

from chaos.faults import Alerts, ChaosMailgun, ChaosPostNord, ChaosZoho, postnord_per_order
from chaos.infra import PrefectServer, ScratchDatabases, TcpProxy
from orderpipe.db import get_engine, migrate
from orderpipe.stripe_api.standin.samples import FI_CONSUMER, clone_order
from orderpipe.tables import AlertRecord, Invoice, OrderRecord, OrderStep, Shipment
from tests.conftest import free_port
from tests.standins.stripe import running_standin
from tests.standins.zoho import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN
from tests.worker_stack import MAILGUN_DOMAIN, MAILGUN_KEY, Proc, RuntimeWorld

REGION = "eu-north-1"
AWS_SECRET = "chaos-aws-secret-0123456789abcdef"
POSTNORD_KEY = "pn-chaos-key-0123456789"
SLACK_PATH = "/services/T0CHAOS/B0CHAOS/chaosSlackSecret0123456789"
FINAL = ("completed", "needs_attention", "failed", "cancelled")


@dataclass
class World:
    layout: str
    root: Path
    seed: int
    stack: ExitStack = field(default_factory=ExitStack)
    receivers: list[str] = field(default_factory=list)
    workers: dict[str, Proc] = field(default_factory=dict)
    up: Proc | None = None
    up_port: int = 0

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self, pg_base: str) -> World:
        s = self.stack
        self.root.mkdir(parents=True, exist_ok=True)
        self.dbs = ScratchDatabases(pg_base)
        s.callback(self.dbs.drop_all)
        self.db_direct = self.dbs.create("op")
        migrate(self.db_direct)
        host_port = self.db_direct.split("@", 1)[1].split("/", 1)[0]
        host, _, port = host_port.partition(":")
        self.proxy = TcpProxy(host, int(port or 5432)).start()
        s.callback(self.proxy.stop)
        self.db_proxied = self.db_direct.replace(host_port, f"127.0.0.1:{self.proxy.port}")
        prefect_db = self.dbs.create("prefect").replace("postgresql+psycopg", "postgresql+asyncpg")
        self.prefect = PrefectServer(self.root / "prefect", prefect_db)
        self.prefect.start()
        s.callback(self.prefect.stop)
        stripe_base, self.store = s.enter_context(running_standin(seed=False))
        self.stripe_base = stripe_base
        self.mailgun = s.enter_context(ChaosMailgun(self.seed + 1, MAILGUN_KEY, MAILGUN_DOMAIN))
        self.postnord = s.enter_context(ChaosPostNord(self.seed + 2))
        self.postnord.api_key = POSTNORD_KEY
        self.zoho = s.enter_context(ChaosZoho(self.seed + 3))
        self.slack = s.enter_context(Alerts(SLACK_PATH))
        extra = {
            "ORDERPIPE_CRM": "zoho", "ORDERPIPE_SHIPPING": "postnord", "ORDERPIPE_ALERTS": "slack",
            "ZOHO_CLIENT_ID": CLIENT_ID, "ZOHO_CLIENT_SECRET": CLIENT_SECRET, "ZOHO_REFRESH_TOKEN": REFRESH_TOKEN,
            "ZOHO_API_BASE": self.zoho.url, "ZOHO_ACCOUNTS_BASE": self.zoho.url,
            "POSTNORD_API_KEY": POSTNORD_KEY, "POSTNORD_CUSTOMER_NUMBER": "0111111118",
            "POSTNORD_SERVICE_CODE": "19", "POSTNORD_API_BASE": self.postnord.url,
            "SLACK_WEBHOOK_URL": self.slack.url + SLACK_PATH,
            "ORDERPIPE_LEASE_SECONDS": "10",
            # the Zoho stand-in has no plan limit: at the default ~100 calls/min (3 per order)
            # the suite's 100-order delivery waited on the throttle for 3 minutes
            "ORDERPIPE_RATE_LIMITS": "zoho-api=10/s",
        }
        if self.layout == "two":
            from tests.standins.s3 import MotoS3

            s3 = s.enter_context(MotoS3())
            import boto3

            self.bucket = f"orderpipe-chaos-{uuid.uuid4().hex[:8]}"
            boto3.client("s3", endpoint_url=s3.url, region_name=REGION, aws_access_key_id="chaos",
                         aws_secret_access_key=AWS_SECRET).create_bucket(
                Bucket=self.bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
            extra |= {"ORDERPIPE_FILE_STORE": "s3", "ORDERPIPE_S3_BUCKET": self.bucket, "AWS_ENDPOINT_URL_S3": s3.url,
                      "AWS_ACCESS_KEY_ID": "chaos", "AWS_SECRET_ACCESS_KEY": AWS_SECRET, "AWS_REGION": REGION}
        self.rw = RuntimeWorld(self.root / "machines", self.db_proxied, self.prefect.api, stripe_base, self.store,
                               self.mailgun, extra_env=extra)
        s.callback(self.rw.stop_all)
        if self.layout == "one":
            self.start_up()
        else:
            for name in ("receiver-a", "receiver-b"):
                _, url = self.rw.start_receiver(name)
                self.receivers.append(url + "/webhooks/stripe")
            for name in ("worker-a", "worker-b"):
                self.workers[name] = self.rw.start_worker(name, ORDERPIPE_RUN_LIMIT="4")
        return self

    def close(self) -> None:
        self.stack.close()

    def start_up(self) -> None:
        """``orderpipe up`` on "machine-1" (a restart after a kill keeps the same data dir)."""
        if not self.up_port:
            self.up_port = free_port()
        env = self.rw.env("up", "machine-1", ORDERPIPE_HOST="127.0.0.1", ORDERPIPE_PORT=str(self.up_port),
                          ORDERPIPE_NO_UI="1", ORDERPIPE_RECEIVER_WORKERS="2",
                          ORDERPIPE_RUN_LIMIT="10")
        self.up = self.rw._start("up", [sys.executable, "-m", "orderpipe.cli", "up"], env)
        url = f"http://127.0.0.1:{self.up_port}"
        self.rw.wait(lambda: _ok(url + "/healthz"), 120, f"orderpipe up did not start: {self.up.tail()}", self.up)
        self.receivers = [url + "/webhooks/stripe"]

    def kill_worker(self) -> tuple[str, float]:
        """kill -9: layout one, the whole `orderpipe up` (the machine's power cut) ; layout two, worker-a."""
        if self.layout == "one":
            assert self.up is not None
            tree = _descendants(self.up.proc.pid)  # the worker, its runs, the receiver: all at once
            for pid in [self.up.proc.pid, *tree]:
                _kill(pid)
            self.up.proc.wait(timeout=10)
            return "orderpipe up", time.monotonic()
        w = self.workers["worker-a"]
        os.kill(w.proc.pid, signal.SIGKILL)
        w.proc.wait(timeout=10)
        return "worker-a", time.monotonic()

    def restart_killed(self) -> None:
        if self.layout == "one":
            self.start_up()
        else:
            self.workers["worker-a"] = self.rw.start_worker("worker-a2", machine="worker-a", ORDERPIPE_RUN_LIMIT="4")

    def cli_env(self, name: str = "cli") -> dict[str, str]:
        machine = "machine-1" if self.layout == "one" else "worker-b"
        return self.rw.env(name, machine)

    def log_files(self) -> list[Path]:
        return [p for p in self.root.rglob("*") if p.is_file() and p.suffix in (".log", ".txt", ".out", ".json")]

    # ---- orders ---------------------------------------------------------------------------------
    def new_orders(self, prefix: str, n: int, source: str = FI_CONSUMER) -> list[str]:
        return [clone_order(self.store, source, f"pi_3Chaos{prefix}{i:06d}") for i in range(n)]

    @property
    def engine(self) -> Any:
        return get_engine(self.db_direct)

    def states(self, ids: list[str]) -> dict[str, str]:
        with Session(self.engine) as s:
            rows = dict(s.execute(select(OrderRecord.order_id, OrderRecord.state)
                                  .where(OrderRecord.order_id.in_(ids))).all())  # type: ignore[attr-defined]
        return {o: rows.get(o, "missing") for o in ids}

    def step_states(self, ids: list[str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {o: {} for o in ids}
        with Session(self.engine) as s:
            for st in s.scalars(select(OrderStep).where(OrderStep.order_id.in_(ids))):  # type: ignore[attr-defined]
                out[st.order_id][st.step] = st.state
        return out

    def wait_final(self, ids: list[str], timeout: float, ok: tuple[str, ...] = ("completed", "needs_attention"),
                   on_poll: Any = None) -> tuple[bool, float]:
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            states = self.states(ids)
            if all(v in ok for v in states.values()):
                # the ledger says final from inside the run; let the engine finish the run too
                self._wait_runs_final(ids, 30)
                return True, time.monotonic() - t0
            if on_poll is not None:
                on_poll(states)
            time.sleep(0.5)
        return False, time.monotonic() - t0

    def _wait_runs_final(self, ids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.runs(ids)
            if all(r["state_type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED") for rs in runs.values()
                   for r in rs):
                return
            time.sleep(0.5)

    def runs(self, ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {o: [] for o in ids}
        names = [f"order-{o}" for o in ids]
        for i in range(0, len(names), 200):
            r = httpx.post(f"{self.prefect.api}/flow_runs/filter", timeout=30,
                           json={"flow_runs": {"name": {"any_": names[i:i + 200]}}, "limit": 200})
            r.raise_for_status()
            for run in r.json():
                out[run["name"].removeprefix("order-")].append(run)
        return out

    def counts(self, ids: list[str]) -> dict[str, Counter[str]]:
        """Per order: what each vendor (stand-in) and orderpipe's database hold."""
        with Session(self.engine) as s:
            inv = Counter(s.scalars(select(Invoice.order_id).where(Invoice.order_id.in_(ids))).all())  # type: ignore[attr-defined]
            ship = Counter(s.scalars(select(Shipment.order_id).where(Shipment.order_id.in_(ids))).all())  # type: ignore[attr-defined]
            alerts = Counter(f"{a.order_id}:{a.step}:{a.kind}:{a.dedupe_key}" for a in s.scalars(
                select(AlertRecord).where(AlertRecord.order_id.in_(ids))))  # type: ignore[attr-defined]
        runs = Counter({o: len(rs) for o, rs in self.runs(ids).items()})
        wanted = set(ids)
        pn = postnord_per_order(self.postnord)
        mg = self.mailgun.per_order()
        deals = self.zoho.deals_per_order()
        slack = Counter()
        for text in self.slack.texts():
            for o in wanted:
                if o in text:
                    slack[o] += 1
        return {"runs": runs, "deals": Counter({o: deals[o] for o in ids}),
                "shipments": Counter({o: pn[o] for o in ids}), "shipments_db": ship,
                "invoices": inv, "emails": Counter({o: mg[o] for o in ids}), "alerts_db": alerts, "slack": slack}

    def invoice_seqs_gapless(self) -> tuple[bool, int]:
        with Session(self.engine) as s:
            rows = s.execute(select(Invoice.seller_id, Invoice.year, Invoice.seq)).all()
        by: dict[tuple[str, int], list[int]] = {}
        for seller, year, seq in rows:
            by.setdefault((seller, year), []).append(seq)
        ok = all(sorted(v) == list(range(1, len(v) + 1)) for v in by.values())
        return ok, len(rows)


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _descendants(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
