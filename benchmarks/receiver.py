"""The receiver under a retry storm, beside bare Flask (`python -m benchmarks.bench --receiver`).

One signed event is recorded (accepted), then redelivered as fast as 16 connections can
(wrk, closed loop: req/s and latency percentiles), then offered at a fixed rate (default
300 events/s, open loop: latency counted from when each request was due, so a stall is not
hidden by the client waiting for it). The same is done against a bare Flask app under the
same gunicorn settings (`orderpipe receiver`'s own argv), in the same run. The machine is
noisy: compare the ratio, not absolute numbers across runs.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx

from benchmarks.common import PYTHON, Launched, ScratchPostgres, clean_env, free_port, pct, say, wait_http

SECRET = "whsec_receiver_bench_not_secret"
CONNECTIONS = 16


def gunicorn_argv(port: int, app_spec: str) -> list[str]:
    """`orderpipe receiver`'s gunicorn command line, on `port`, serving `app_spec`."""
    from orderpipe.cli import receiver_argv

    argv = receiver_argv(SimpleNamespace(orderpipe_host="127.0.0.1", orderpipe_port=port,  # type: ignore[arg-type]
                                         orderpipe_receiver_workers=2))
    argv[0] = PYTHON
    return argv[:-1] + [app_spec]


def signed_body() -> tuple[bytes, str]:
    """A paid event as Stripe sends it, and its Stripe-Signature (valid for 300 s)."""
    body = json.dumps({"id": f"evt_bench_{uuid.uuid4().hex[:12]}", "object": "event",
                       "type": "payment_intent.succeeded", "created": int(time.time()), "livemode": False,
                       "api_version": "2025-03-31.basil",
                       "data": {"object": {"id": f"pi_bench_{uuid.uuid4().hex[:12]}", "object": "payment_intent"}}}
                      ).encode()
    t = int(time.time())
    return body, f"t={t},v1={hmac.new(SECRET.encode(), f'{t}.'.encode() + body, hashlib.sha256).hexdigest()}"


# ---- closed loop: wrk ----------------------------------------------------------------------

LUA = """wrk.method = "POST"
local f = io.open("{body}", "rb"); wrk.body = f:read("*a"); f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Stripe-Signature"] = "{header}"
"""


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(url: str, body: bytes, header: str, seconds: float, workdir: Path) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        return {"error": "wrk not installed (apt-get install -y wrk)"}
    (workdir / "body.json").write_bytes(body)
    script = workdir / "post.lua"
    script.write_text(LUA.format(body=workdir / "body.json", header=header))
    out = subprocess.run(["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{seconds:.0f}s", "--latency",
                          "-s", str(script), url], capture_output=True, text=True, timeout=seconds + 60).stdout
    res: dict[str, Any] = {"raw": out}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    res["rps"] = float(m.group(1)) if m else None
    for p in ("50", "90", "99"):
        m = re.search(rf"^\s+{p}(?:\.000)?%\s+([\d.]+)(us|ms|s|m)\s*$", out, re.M)
        res[f"p{p}_ms"] = _ms(m.group(1), m.group(2)) if m else None
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    res["non_2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors:.*", out)
    res["socket_errors"] = m.group(0) if m else None
    return res


# ---- open loop: a fixed offered rate ---------------------------------------------------------

async def _fixed_rate(host: str, port: int, body: bytes, header: str, rate: float, seconds: float
                      ) -> dict[str, Any]:
    request = (f"POST /webhooks/stripe HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
               f"Stripe-Signature: {header}\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body
    free: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        free.put_nowait(await asyncio.open_connection(host, port))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0

    async def one(due: float) -> None:
        nonlocal errors
        reader, writer = await free.get()
        try:
            writer.write(request)
            await writer.drain()
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            status = int(status_line.split()[1])
            statuses[status] = statuses.get(status, 0) + 1
            latencies.append((time.perf_counter() - due) * 1000)
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            errors += 1
            reader, writer = await asyncio.open_connection(host, port)
        finally:
            free.put_nowait((reader, writer))

    n = int(rate * seconds)
    start = time.perf_counter() + 0.05
    tasks = []
    for i in range(n):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - start
    while not free.empty():
        _, writer = free.get_nowait()
        writer.close()
    return {"offered_per_s": rate, "sent": n, "achieved_per_s": round(len(latencies) / elapsed, 1),
            "p50_ms": _round(pct(latencies, 50)), "p99_ms": _round(pct(latencies, 99)),
            "max_ms": _round(max(latencies) if latencies else None), "statuses": statuses, "errors": errors}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def fixed_rate(port: int, body: bytes, header: str, rate: float, seconds: float) -> dict[str, Any]:
    return asyncio.run(_fixed_rate("127.0.0.1", port, body, header, rate, seconds))


# ---- one system ----------------------------------------------------------------------------

def measure(name: str, app_spec: str, env: dict[str, str], workdir: Path, *, seconds: float, rate: float,
            rate_seconds: float) -> dict[str, Any]:
    port = free_port()
    proc = Launched(name, gunicorn_argv(port, app_spec), env, workdir / f"{name}.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60, proc=proc)
        body, header = signed_body()
        first = httpx.post(f"http://127.0.0.1:{port}/webhooks/stripe", content=body,
                           headers={"Stripe-Signature": header, "Content-Type": "application/json"}, timeout=10)
        again = httpx.post(f"http://127.0.0.1:{port}/webhooks/stripe", content=body,
                           headers={"Stripe-Signature": header, "Content-Type": "application/json"}, timeout=10)
        say(f"  {name}: first delivery {first.status_code} {first.text.strip()[:80]}; "
            f"redelivery {again.status_code} {again.text.strip()[:80]}")
        say(f"  {name}: wrk {CONNECTIONS} connections, {seconds:.0f} s ...")
        closed = run_wrk(f"http://127.0.0.1:{port}/webhooks/stripe", body, header, seconds, workdir)
        say(f"  {name}: {rate:.0f} events/s offered for {rate_seconds:.0f} s ...")
        opened = fixed_rate(port, body, header, rate, rate_seconds)
        return {"first": first.status_code, "redelivery": again.json().get("status") if again.status_code == 200
                else again.status_code, "wrk": {k: v for k, v in closed.items() if k != "raw"}, "fixed_rate": opened}
    finally:
        proc.stop(timeout=20)


def run(*, pg_base: str, databases: list[str], seconds: float = 15, rate: float = 300,
        rate_seconds: float = 10) -> dict[str, Any]:
    from orderpipe.db import migrate

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="orderpipe-recv-bench-") as tmp:
        workdir = Path(tmp)
        base = clean_env(STRIPE_WEBHOOK_SECRET=SECRET, ORDERPIPE_DATA_DIR=str(workdir / "data"),
                         PREFECT_API_URL="http://127.0.0.1:9/api")
        say("receiver bench: bare Flask")
        results["bare-flask"] = measure("bare-flask", "benchmarks.bare_flask:app", base, workdir, seconds=seconds,
                                        rate=rate, rate_seconds=rate_seconds)
        scratch = ScratchPostgres(pg_base)
        try:
            for db in databases:
                if db == "sqlite":
                    url = f"sqlite:///{workdir / 'data' / 'orderpipe.db'}"
                else:
                    url = scratch.create(f"bench_recv_{uuid.uuid4().hex[:8]}")
                migrate(url)
                say(f"receiver bench: orderpipe on {db}")
                results[f"orderpipe-{db}"] = measure(f"orderpipe-{db}", "webhook.wsgi:application()",
                                                     dict(base, DATABASE_URL=url), workdir, seconds=seconds,
                                                     rate=rate, rate_seconds=rate_seconds)
        finally:
            from orderpipe.db import _engines

            for engine in _engines.values():
                engine.dispose()
            scratch.drop_all()
    return results


def table(results: dict[str, Any], rate: float) -> str:
    names = list(results)
    bare = results.get("bare-flask", {}).get("wrk", {}).get("rps")

    def cell(r: dict[str, Any], fn: Any) -> str:
        try:
            v = fn(r)
        except (KeyError, TypeError):
            return "-"
        return "-" if v is None else str(v)

    rows = [
        ("wrk 16 conns: req/s", lambda r: r["wrk"]["rps"]),
        ("  ratio to bare Flask", lambda r: round(r["wrk"]["rps"] / bare, 2) if bare else None),
        ("  p50 / p99 ms", lambda r: f"{r['wrk']['p50_ms']} / {r['wrk']['p99_ms']}"),
        ("  non-2xx", lambda r: r["wrk"]["non_2xx"]),
        (f"{rate:.0f}/s offered: achieved/s", lambda r: r["fixed_rate"]["achieved_per_s"]),
        ("  p50 / p99 / max ms", lambda r: f"{r['fixed_rate']['p50_ms']} / {r['fixed_rate']['p99_ms']} / "
                                           f"{r['fixed_rate']['max_ms']}"),
        ("  statuses", lambda r: ",".join(f"{k}:{v}" for k, v in sorted(r["fixed_rate"]["statuses"].items()))),
        ("redelivery answered", lambda r: r["redelivery"]),
    ]
    w0 = max(len(label) for label, _ in rows)
    cells = [[cell(results[n], fn) for n in names] for _, fn in rows]
    widths = [max(len(n), *(len(c[i]) for c in cells)) for i, n in enumerate(names)]
    lines = ["", " " * w0 + "  " + "  ".join(n.rjust(w) for n, w in zip(names, widths, strict=True))]
    for (label, _), row in zip(rows, cells, strict=True):
        lines.append(label.ljust(w0) + "  " + "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    for n in names:
        if "error" in results[n].get("wrk", {}):
            lines.append(f"{n}: {results[n]['wrk']['error']}")
    return "\n".join(lines)
