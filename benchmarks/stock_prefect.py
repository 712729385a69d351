"""Stock Prefect baseline: `prefect server start` on a scratch Postgres database and plain
`prefect.serve()` (benchmarks/stock_flow.py) running a trivial 7-task flow. Runs are created
through the REST API (`POST /deployments/{id}/create_flow_run`), one request after another."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import measure
from benchmarks.common import PYTHON, Launched, PrefectApi, ScratchPostgres, clean_env, free_port, say, wait_http


def classify(lineage: list[str]) -> str:
    return "server" if any("prefect server start" in c for c in lineage) else "runner"


def run(pg_base: str, *, orders: int, singles: int, limit: int, query_seconds: float,
        timeout: float) -> dict[str, Any]:
    db = f"bench_stock_{secrets.token_hex(4)}"
    work = Path(tempfile.mkdtemp(prefix="bench-stock-"))
    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = clean_env(
        PREFECT_HOME=str(work / "prefect"), PREFECT_API_URL=api_url, PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1", PREFECT_SERVER_ALLOW_EPHEMERAL_MODE="false",
    )
    pg = ScratchPostgres(pg_base)
    started: list[Launched] = []
    api: PrefectApi | None = None
    try:
        pg_url = pg.create(db).replace("+psycopg", "+asyncpg")
        t0 = time.monotonic()
        server = Launched("stock prefect server", [PYTHON, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                                    "--port", str(port), "--no-ui"],
                          {**env, "PREFECT_API_DATABASE_CONNECTION_URL": pg_url}, work / "server.log")
        started.append(server)
        wait_http(api_url + "/health", 120, server)
        runner = Launched("stock serve()", [PYTHON, "-m", "benchmarks.stock_flow", str(limit), str(query_seconds)],
                          env, work / "runner.log")
        started.append(runner)
        wait_http(api_url + "/deployments/name/stock-trivial/stock", 90, runner)
        say(f"  stock: server on Postgres ({db}) and serve(limit={limit}, query_seconds={query_seconds}) up in "
            f"{time.monotonic() - t0:.1f} s")
        api = PrefectApi(api_url)
        dep_id = api.client.get("deployments/name/stock-trivial/stock").json()["id"]

        def submit(tag: str) -> measure.Submitted:
            sent = time.time()
            t = time.perf_counter()
            r = api.client.post(f"deployments/{dep_id}/create_flow_run", json={"parameters": {"x": 0}})
            r.raise_for_status()
            return measure.Submitted(r.json()["id"], sent, (time.perf_counter() - t) * 1000)

        target = measure.Target("stock", api, "ids", submit, lambda: [server.pid, runner.pid], classify,
                                lambda: pg.size(db))
        result: dict[str, Any] = {"setup": f"prefect.serve(limit={limit}, query_seconds={query_seconds}), "
                                           "server on Postgres", "database": "postgres", "app_role": "runner"}
        result["warmup"] = measure.singles(target, 1, timeout=120, tag="w")
        result["single"] = measure.singles(target, singles, timeout=120, tag="s")
        result["burst"] = measure.burst(target, orders, timeout)
        return result
    finally:
        if api is not None:
            api.close()
        for proc in reversed(started):
            rc = proc.stop()
            if rc not in (0, None, -15):
                say(f"  {proc.name} exited with {rc}")
        pg.drop_all()
        shutil.rmtree(work, ignore_errors=True)

