"""`make bench`: stock Prefect `serve()` and orderpipe (Postgres and SQLite) side by side, one run.

For each system: one warm-up unit (not counted), single units one at a time (idle latency),
then a burst of N units submitted back to back (throughput, latency under load, CPU,
memory, Prefect database growth). A unit is a flow run created through the API (stock) or
an order posted as a signed Stripe webhook (orderpipe). The machine is noisy: compare the
ratios printed at the end, not absolute numbers across runs. See README "Speed".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import time
from typing import Any

from benchmarks.common import REPO_ROOT, say

SYSTEMS = ("stock", "orderpipe-pg", "orderpipe-sqlite")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=None, help="burst size for every system (default 120; --quick 20)")
    ap.add_argument("--singles", type=int, default=None,
                    help="single units one at a time per system (default 10 stock, 5 orderpipe; --quick 3)")
    ap.add_argument("--quick", action="store_true", help="a smoke run: 20 orders, 3 singles")
    ap.add_argument("--skip-stock", action="store_true")
    ap.add_argument("--skip-postgres", action="store_true")
    ap.add_argument("--skip-sqlite", action="store_true")
    ap.add_argument("--json", metavar="PATH", help="also write the full results as JSON here")
    ap.add_argument("--receiver", action="store_true",
                    help="the receiver under a retry storm beside bare Flask (wrk + a fixed rate), nothing else")
    ap.add_argument("--receiver-seconds", type=float, default=None, help="wrk duration (default 15; --quick 5)")
    ap.add_argument("--receiver-rate", type=float, default=300, help="fixed offered events/s (default 300)")
    ap.add_argument("--pg", default=os.environ.get("BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432"),
                    help="Postgres server for the scratch bench_* databases (default %(default)s; env BENCH_PG_URL)")
    ap.add_argument("--timeout", type=float, default=1200, help="seconds to wait for one burst (default 1200)")
    ap.add_argument("--stock-limit", type=int, default=4, help="serve(limit=...) of the stock baseline (default 4)")
    ap.add_argument("--stock-query-seconds", type=float, default=0.25,
                    help="serve(query_seconds=...) of the stock baseline (default 0.25, as orderpipe's poll)")
    args = ap.parse_args(argv)
    if args.orders is None:
        args.orders = 20 if args.quick else 120
    return args


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def machine() -> dict[str, Any]:
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "memory": mem, "python": platform.python_version(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
            "git_commit": git("rev-parse", "--short", "HEAD"), "git_dirty": bool(git("status", "--porcelain",
                                                                                       "--untracked-files=no"))}


def main_receiver(args: argparse.Namespace) -> int:
    from benchmarks import receiver

    seconds = args.receiver_seconds or (5 if args.quick else 15)
    dbs = [d for d, skip in (("sqlite", args.skip_sqlite), ("postgres", args.skip_postgres)) if not skip]
    m = machine()
    say(f"receiver bench: {m['cpus']} CPUs, load {m['loadavg_at_start']}, commit {m['git_commit']}"
        f"{' (dirty)' if m['git_dirty'] else ''}")
    try:
        results = receiver.run(pg_base=args.pg, databases=dbs, seconds=seconds, rate=args.receiver_rate,
                               rate_seconds=min(10.0, seconds))
    except KeyboardInterrupt:
        say("interrupted; everything started was stopped")
        return 1
    print(receiver.table(results, args.receiver_rate))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": m, "receiver": results}, f, indent=2)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # a SIGTERM cleans up like Ctrl-C
    if args.receiver:
        return main_receiver(args)
    from benchmarks import orders_burst, stock_prefect

    out: dict[str, Any] = {"machine": machine(), "config": {
        "orders": args.orders, "quick": args.quick, "stock_limit": args.stock_limit,
        "stock_query_seconds": args.stock_query_seconds}, "results": {}}
    m = out["machine"]
    say(f"bench: {args.orders} orders per burst; {m['cpus']} CPUs, load {m['loadavg_at_start']}, "
        f"commit {m['git_commit']}{' (dirty)' if m['git_dirty'] else ''}")
    started = time.monotonic()
    failed = False
    plan = [s for s, skip in zip(SYSTEMS, (args.skip_stock, args.skip_postgres, args.skip_sqlite), strict=True)
            if not skip]
    try:
        for system in plan:
            t0 = time.monotonic()
            say(f"{system}:")
            try:
                if system == "stock":
                    res = stock_prefect.run(args.pg, orders=args.orders,
                                            singles=args.singles or (3 if args.quick else 10),
                                            limit=args.stock_limit, query_seconds=args.stock_query_seconds,
                                            timeout=args.timeout)
                else:
                    res = orders_burst.run(database="postgres" if system == "orderpipe-pg" else "sqlite",
                                           pg_base=args.pg, orders=args.orders,
                                           singles=args.singles or (3 if args.quick else 5), timeout=args.timeout)
            except Exception as exc:  # noqa: BLE001 - one system failing must not lose the others' numbers
                say(f"  {system} failed: {type(exc).__name__}: {exc}")
                res = {"error": f"{type(exc).__name__}: {exc}"}
                failed = True
            res["wall_s"] = round(time.monotonic() - t0, 1)
            out["results"][system] = res
            if res.get("burst", {}).get("completed", 0) != args.orders and "error" not in res:
                failed = True
    except KeyboardInterrupt:
        say("interrupted; everything started was stopped")
        failed = True
    out["wall_s"] = round(time.monotonic() - started, 1)
    out["ratios"] = ratios(out["results"])
    print(table(out))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
        say(f"JSON written to {args.json}")
    return 1 if failed else 0


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    stock = results.get("stock", {}).get("burst", {}).get("per_min")
    out: dict[str, Any] = {}
    for name in ("orderpipe-pg", "orderpipe-sqlite"):
        b = results.get(name, {}).get("burst", {})
        if stock and b.get("per_min"):
            out[f"{name} per_min / stock per_min"] = round(b["per_min"] / stock, 2)
    return out


def _num(x: Any, fmt: str = "{:.2f}") -> str:
    return "-" if x is None else fmt.format(x)


def table(out: dict[str, Any]) -> str:
    res = out["results"]
    names = [n for n in SYSTEMS if n in res]
    stock_rate = res.get("stock", {}).get("burst", {}).get("per_min")
    n = out["config"]["orders"]
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, fn: Any) -> None:
        cells = []
        for name in names:
            r = res[name]
            try:
                cells.append("error" if "error" in r else fn(r))
            except (KeyError, TypeError):
                cells.append("-")
        rows.append((label, cells))

    def app(r: dict[str, Any]) -> str:
        return str(r["app_role"])

    def role_val(r: dict[str, Any], key: str, role: str, fmt: str) -> str:
        roles = r["burst"][key] or {}
        role = app(r) if role == "app" else role
        return _num(roles.get(role), fmt)

    row("units", lambda r: "flow runs (API)" if app(r) == "runner" else "orders (webhook)")
    row("single alone: create->end p50 s", lambda r: f"{_num(r['single']['p50_s'])} (n={r['single']['completed']})")
    row(f"burst of {n}: completed", lambda r: f"{r['burst']['completed']}/{r['burst']['n']}")
    row("burst: per min", lambda r: _num(r["burst"]["per_min"], "{:.1f}"))
    row("burst: ratio to stock per min",
        lambda r: _num(r["burst"]["per_min"] / stock_rate if stock_rate and r["burst"]["per_min"] else None))
    row("burst: create->end p50 / p95 s",
        lambda r: f"{_num(r['burst']['latency_s']['p50'], '{:.1f}')} / "
                  f"{_num(r['burst']['latency_s']['p95'], '{:.1f}')}")
    row("burst: submit answer p50 / p95 ms",
        lambda r: f"{_num(r['burst']['submit_answer_ms']['p50'], '{:.0f}')} / "
                  f"{_num(r['burst']['submit_answer_ms']['p95'], '{:.0f}')}")
    row("CPU-s per unit: app (runner|orderpipe)", lambda r: role_val(r, "cpu_s_per_unit", "app", "{:.2f}"))
    row("CPU-s per unit: Prefect server", lambda r: role_val(r, "cpu_s_per_unit", "server", "{:.2f}"))
    row("peak RSS MiB: app (PSS)", lambda r: f"{role_val(r, 'peak_rss_mib', 'app', '{:.0f}')} "
                                             f"({role_val(r, 'peak_pss_mib', 'app', '{:.0f}')}) "
                                             f"{r['burst']['peak_procs'].get(app(r), 0)}p")
    row("peak RSS MiB: server (PSS)", lambda r: f"{role_val(r, 'peak_rss_mib', 'server', '{:.0f}')} "
                                                f"({role_val(r, 'peak_pss_mib', 'server', '{:.0f}')})")
    row("Prefect DB growth KiB per unit",
        lambda r: f"{_num(r['burst']['prefect_db_kib_per_unit'], '{:.0f}')} "
                  f"({'PG' if r['database'] == 'postgres' else 'SQLite'})")
    row("machine during burst: busy %", lambda r: _num(r["burst"]["machine"]["busy_pct"], "{:.0f}"))
    row("  CPU-s per unit: Postgres cluster",
        lambda r: _num(r["burst"]["machine"]["postgres_cluster_cpu_s"] / r["burst"]["n"]))
    row("  CPU-s: bench driver / everything else",
        lambda r: f"{_num(r['burst']['machine']['bench_driver_cpu_s'], '{:.0f}')} / "
                  f"{_num(r['burst']['machine']['other_cpu_s'], '{:.0f}')}")
    row("  machine taken by everything else %", lambda r: _num(r["burst"]["machine"]["other_pct"], "{:.0f}"))
    row("wall s", lambda r: _num(r["wall_s"], "{:.0f}"))

    header = ["stock serve()" if n_ == "stock" else n_ for n_ in names]
    w0 = max(len(label) for label, _ in rows)
    widths = [max([len(h)] + [len(cells[i]) for _, cells in rows]) for i, h in enumerate(header)]
    lines = ["", " " * w0 + "  " + "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True))]
    for label, cells in rows:
        lines.append(label.ljust(w0) + "  " + "  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)))
    for name in names:
        if "error" in res[name]:
            lines.append(f"{name}: {res[name]['error'][:500]}")
        else:
            nc = res[name]["burst"].get("not_completed")
            if nc:
                lines.append(f"{name}: not completed: {nc}")
            st = res[name].get("orderpipe_status")
            if st:
                lines.append(f"{name}: orderpipe status --json states: {st}")
    for k, v in out["ratios"].items():
        lines.append(f"ratio {k}: {v}")
    m = out["machine"]
    lines.append(f"{m['cpus']} CPUs, load at start {m['loadavg_at_start']}, commit {m['git_commit']}"
                 f"{' (dirty)' if m['git_dirty'] else ''}; total {out['wall_s']:.0f} s")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
