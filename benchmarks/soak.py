"""`make bench-soak`: is memory flat over many orders?

`orderpipe up` on a scratch Postgres database (or SQLite with `--sqlite`), N orders posted as
signed webhooks at a steady rate a little under what the stack sustains, and every few
seconds the resident memory of its long-lived processes: the worker parent (which forks a
child per run: a leak there grows every child), the receiver (gunicorn), and the Prefect
server. Printed at every tenth of the orders, with the first tenth as the baseline; the
verdict compares the last tenth's worker RSS with the first's. The run processes the worker
forks (each serves up to ORDERPIPE_RUNS_PER_PROCESS runs, then is replaced) are shown apart:
the largest one's RSS at each sample.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from benchmarks.common import PYTHON, Launched, PrefectApi, ScratchPostgres, clean_env, free_port, say
from benchmarks.orders_burst import WEBHOOK_SECRET
from benchmarks.procstats import all_procs, tree


def _rss_mib(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _roles(root: int) -> dict[str, list[int]]:
    """The stack's long-lived processes by role (a worker's forked children excluded)."""
    procs = tree([root], all_procs())
    out: dict[str, list[int]] = {"worker": [], "receiver": [], "server": []}
    for pid, p in procs.items():
        parent = procs.get(p.ppid)
        if "prefect server start" in p.cmdline or ("uvicorn" in p.cmdline and "prefect" in p.cmdline):
            if parent is None or "prefect server start" not in parent.cmdline:
                out["server"].append(pid)
        elif "orderpipe.cli worker" in p.cmdline and (parent is None or "orderpipe.cli worker" not in parent.cmdline):
            out["worker"].append(pid)
        elif "gunicorn" in p.cmdline:
            out["receiver"].append(pid)
    return out


def _run_processes(workers: list[int]) -> list[int]:
    """The worker's children now (they come and go, so read each time)."""
    procs = all_procs()
    return [pid for pid, p in procs.items() if p.ppid in workers]


def run(orders: int, rate: float, database: str, pg_base: str) -> int:
    from orderpipe.stripe_api.standin import DEFAULT_API_KEY, SAMPLE_ORDER_IDS, StandinServer, StandinStore, seed_store
    from orderpipe.stripe_api.standin.events import order_event, signed_delivery
    from orderpipe.stripe_api.standin.samples import clone_order

    store = StandinStore(api_key=DEFAULT_API_KEY)
    seed_store(store)
    samples = [o for o in SAMPLE_ORDER_IDS if store.session_for(o) is not None]
    data_dir = Path(tempfile.mkdtemp(prefix="soak-orderpipe-"))
    pg = ScratchPostgres(pg_base) if database == "postgres" else None
    standin = StandinServer(store).start()
    receiver_port, prefect_port = free_port(), free_port()
    env = clean_env(ORDERPIPE_DATA_DIR=str(data_dir / "data"), ORDERPIPE_HOST="127.0.0.1",
                    ORDERPIPE_PORT=str(receiver_port), PREFECT_SERVER_API_PORT=str(prefect_port), ORDERPIPE_NO_UI="1",
                    STRIPE_API_BASE=standin.url, STRIPE_API_KEY=DEFAULT_API_KEY, STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET)
    if pg is not None:
        db = f"bench_soak_{secrets.token_hex(4)}"
        env["DATABASE_URL"] = pg.create(db)
        pg.track(f"{db}_prefect")
    up = Launched("orderpipe up", [PYTHON, "-m", "orderpipe.cli", "up"], env, data_dir / "up.log",
                  watch="orderpipe is up")
    samples_taken: list[tuple[int, dict[str, float]]] = []
    done = [0]
    stop = threading.Event()
    try:
        up.wait_ready(timeout=240)
        api = PrefectApi(f"http://127.0.0.1:{prefect_port}/api")
        roles = _roles(up.pid)
        say(f"soak: {orders} orders at {rate:g}/s on {database}; worker {roles['worker']}, "
            f"receiver {roles['receiver']}, server {roles['server']}")

        names: list[str] = []
        watch = PrefectApi(f"http://127.0.0.1:{prefect_port}/api")

        def sample() -> None:
            while not stop.wait(3):
                done[0] = _completed(watch, list(names))
                rss = {r: sum(_rss_mib(p) for p in pids) for r, pids in roles.items()}
                rss["runs"] = max((_rss_mib(p) for p in _run_processes(roles["worker"])), default=0.0)
                samples_taken.append((done[0], rss))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        client = httpx.Client(timeout=30)
        started = time.monotonic()
        for i in range(orders):
            order_id = clone_order(store, samples[i % len(samples)], f"pi_3Soak{i:013d}")
            body, headers = signed_delivery(order_event(store, order_id, "checkout.session.completed"), WEBHOOK_SECRET)
            r = client.post(f"http://127.0.0.1:{receiver_port}/webhooks/stripe", content=body, headers=headers)
            r.raise_for_status()
            names.append(f"order-{order_id}")
            time.sleep(max(0.0, started + (i + 1) / rate - time.monotonic()))
        deadline = time.monotonic() + 900
        while _completed(api, names) < orders and time.monotonic() < deadline:
            time.sleep(2)
        done[0] = _completed(api, names)
        wall = time.monotonic() - started
        stop.set()
        sampler.join(timeout=10)
        return _report(samples_taken, orders, done[0], wall)
    finally:
        stop.set()
        up.stop(timeout=90)
        standin.stop()
        if pg is not None:
            pg.drop_all()
        if os.environ.get("BENCH_KEEP"):  # logs/worker.log: the worker's own lines (ORDERPIPE_TRACEMALLOC=1)
            say(f"data dir kept: {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def _completed(api: PrefectApi, names: list[str]) -> int:
    n = 0
    for i in range(0, len(names), 200):
        n += sum(1 for r in api.runs(names=names[i:i + 200]) if r.get("state_type") == "COMPLETED")
    return n


def _report(samples: list[tuple[int, dict[str, float]]], orders: int, completed: int, wall: float) -> int:
    say("")
    say(f"{'orders completed':>18} {'worker MiB':>11} {'run process MiB':>16} {'receiver MiB':>13} "
        f"{'server MiB':>11}")
    shown: list[dict[str, float]] = []
    for tenth in range(1, 11):
        upto = orders * tenth // 10
        at = [s for n, s in samples if n <= upto]
        if not at:
            continue
        last = at[-1]
        shown.append(last)
        say(f"{upto:>18} {last['worker']:>11.0f} {last.get('runs', 0):>16.0f} {last['receiver']:>13.0f} "
            f"{last['server']:>11.0f}")
    say(f"completed {completed}/{orders} in {wall:.0f} s ({60 * completed / wall:.0f}/min)")
    if len(shown) < 2:
        say("not enough samples for a verdict")
        return 1
    growth = shown[-1]["worker"] - shown[0]["worker"]
    flat = growth < max(20.0, 0.1 * shown[0]["worker"])
    say(f"worker parent RSS {shown[0]['worker']:.0f} -> {shown[-1]['worker']:.0f} MiB ({growth:+.0f}): "
        f"{'flat' if flat else 'GROWING'}; server {shown[0]['server']:.0f} -> {shown[-1]['server']:.0f} MiB; "
        f"receiver {shown[0]['receiver']:.0f} -> {shown[-1]['receiver']:.0f} MiB")
    return 0 if flat and completed == orders else 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=1.6, help="orders per second offered (default 1.6 = 96/min)")
    ap.add_argument("--sqlite", action="store_true", help="the embedded default instead of Postgres")
    ap.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432")
    args: Any = ap.parse_args(argv)
    return run(args.orders, args.rate, "sqlite" if args.sqlite else "postgres", args.pg)


if __name__ == "__main__":
    raise SystemExit(main())
