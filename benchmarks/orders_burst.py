"""orderpipe as a user runs it: `orderpipe up` in a subprocess (temporary data dir, free ports,
Stripe pointed at the bundled stand-in, no UI), orders posted as signed
`checkout.session.completed` webhooks, each order's flow run (`order-<pi id>`, the contract's
run name) read back from the Prefect API. Nothing here depends on what `orderpipe up` runs
inside; processes are classified by command line only."""

from __future__ import annotations

import itertools
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks import measure
from benchmarks.common import PYTHON, REPO_ROOT, Launched, PrefectApi, ScratchPostgres, clean_env, free_port, say

WEBHOOK_SECRET = "whsec_orderpipe_bench_not_secret"
_serial = itertools.count(1)


def classify(lineage: list[str]) -> str:
    return "server" if any("prefect server start" in c for c in lineage) else "orderpipe"


def sqlite_prefect_db_size(data_dir: Path) -> int | None:
    """prefect.db plus its -wal, wherever `orderpipe up` keeps Prefect's home under the data dir."""
    dbs = list(data_dir.rglob("prefect.db"))
    if not dbs:
        return None
    return sum(p.stat().st_size for db in dbs for p in (db, db.with_name(db.name + "-wal")) if p.exists())


def run(*, database: str, pg_base: str | None, orders: int, singles: int, timeout: float) -> dict[str, Any]:
    """database: "postgres" (scratch bench_op_* database; orderpipe puts Prefect in <db>_prefect) or "sqlite"."""
    from orderpipe.stripe_api.standin import DEFAULT_API_KEY, SAMPLE_ORDER_IDS, StandinServer, StandinStore, seed_store
    from orderpipe.stripe_api.standin.events import order_event, signed_delivery
    from orderpipe.stripe_api.standin.samples import clone_order

    label = f"orderpipe-{'pg' if database == 'postgres' else 'sqlite'}"
    store = StandinStore(api_key=DEFAULT_API_KEY)
    seed_store(store)
    samples = [o for o in SAMPLE_ORDER_IDS if store.session_for(o) is not None]
    data_dir = Path(tempfile.mkdtemp(prefix="bench-orderpipe-"))
    pg = ScratchPostgres(pg_base) if database == "postgres" else None
    standin = StandinServer(store).start()
    up: Launched | None = None
    api: PrefectApi | None = None
    client = httpx.Client(timeout=30)
    receiver_port, prefect_port = free_port(), free_port()
    env = clean_env(
        ORDERPIPE_DATA_DIR=str(data_dir / "data"), ORDERPIPE_HOST="127.0.0.1", ORDERPIPE_PORT=str(receiver_port),
        PREFECT_SERVER_API_PORT=str(prefect_port), ORDERPIPE_NO_UI="1", STRIPE_API_BASE=standin.url,
        STRIPE_API_KEY=DEFAULT_API_KEY, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    prefect_db: str | None = None
    try:
        if pg is not None:
            db = f"bench_op_{secrets.token_hex(4)}"
            env["DATABASE_URL"] = pg.create(db)
            prefect_db = f"{db}_prefect"
            pg.track(prefect_db)
        t0 = time.monotonic()
        up = Launched("orderpipe up", [PYTHON, "-m", "orderpipe.cli", "up"], env, data_dir / "up.log",
                      watch="orderpipe is up")
        up.wait_ready(timeout=240)
        say(f"  {label}: `orderpipe up` ready in {time.monotonic() - t0:.1f} s "
            f"({'Postgres ' + env['DATABASE_URL'].rsplit('/', 1)[1] if pg else 'SQLite'})")
        api = PrefectApi(f"http://127.0.0.1:{prefect_port}/api")
        url = f"http://127.0.0.1:{receiver_port}/webhooks/stripe"

        def submit(_tag: str) -> measure.Submitted:
            n = next(_serial)
            order_id = clone_order(store, samples[n % len(samples)], f"pi_3Bench{n:013d}")
            body, headers = signed_delivery(order_event(store, order_id, "checkout.session.completed"),
                                            WEBHOOK_SECRET)
            sent = time.time()
            t = time.perf_counter()
            r = client.post(url, content=body, headers=headers)
            answer_ms = (time.perf_counter() - t) * 1000
            if r.status_code != 200 or r.json().get("status") != "accepted":
                raise RuntimeError(f"receiver answered {r.status_code} {r.text[:300]} for {order_id}")
            return measure.Submitted(f"order-{order_id}", sent, answer_ms)

        if prefect_db is not None:
            db_size = (lambda: pg.size(prefect_db))  # type: ignore[union-attr]  # noqa: E731
        else:
            db_size = (lambda: sqlite_prefect_db_size(data_dir / "data"))  # noqa: E731
        target = measure.Target(label, api, "names", submit, lambda: [up.pid], classify, db_size)  # type: ignore[union-attr]
        result: dict[str, Any] = {"setup": "orderpipe up (defaults)", "database": database, "app_role": "orderpipe"}
        result["warmup"] = measure.singles(target, 1, timeout=180, tag="w")
        result["single"] = measure.singles(target, singles, timeout=180, tag="s")
        result["burst"] = measure.burst(target, orders, timeout)
        result["orderpipe_status"] = _status_counts(env, orders + singles + 1)
        return result
    finally:
        client.close()
        if api is not None:
            api.close()
        if up is not None:
            rc = up.stop(timeout=90)
            if rc not in (0, None):
                say(f"  {label}: `orderpipe up` exited with {rc}")
        standin.stop()
        if pg is not None:
            pg.drop_all()
        if os.environ.get("BENCH_KEEP"):  # the logs say what each process did (worker.log: CPU-s per run)
            say(f"  {label}: data dir kept: {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def _status_counts(env: dict[str, str], limit: int) -> dict[str, Any]:
    """Order states as orderpipe itself reports them (`orderpipe status --json`), a cross-check."""
    try:
        out = subprocess.run([PYTHON, "-m", "orderpipe.cli", "status", "--json", "--limit", str(limit)], env=env,
                             cwd=str(REPO_ROOT), capture_output=True, text=True, timeout=120, check=True).stdout
        counts: dict[str, int] = {}
        for row in json.loads(out):
            counts[row["state"]] = counts.get(row["state"], 0) + 1
        return counts
    except (subprocess.SubprocessError, ValueError, KeyError, TypeError) as exc:
        return {"error": f"{type(exc).__name__}: {exc}"[:300]}
