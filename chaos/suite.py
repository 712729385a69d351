"""What ``make chaos`` runs: each layout's stack, its scenarios in turn, the receiver fuzz and the
log/artifact scan; then the table. Exit 1 when any invariant was violated."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chaos import scenarios as sc
from chaos.fuzz import Fuzzer
from chaos.scan import scan
from chaos.scenarios import Row
from chaos.world import AWS_SECRET, POSTNORD_KEY, SLACK_PATH, World
from orderpipe.stripe_api.standin import DEFAULT_API_KEY
from orderpipe.tables import OrderRecord
from tests.standins.zoho import CLIENT_SECRET, REFRESH_TOKEN
from tests.worker_stack import MAILGUN_KEY, SECRET

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Sizes:
    delivery: tuple[int, int]  # orders, deliveries
    delivery_two: tuple[int, int]
    vendor_orders: int
    slow_timeouts: bool
    undelivered: int
    prefect: tuple[int, float]  # orders, outage seconds
    db: tuple[int, float]
    kill: int
    fuzz: int
    db_two: bool


FULL = Sizes(delivery=(100, 1000), delivery_two=(30, 300), vendor_orders=40, slow_timeouts=True, undelivered=3,
             prefect=(20, 60), db=(20, 30), kill=10, fuzz=10_000, db_two=True)
QUICK = Sizes(delivery=(10, 100), delivery_two=(10, 100), vendor_orders=10, slow_timeouts=False, undelivered=2,
              prefect=(6, 20), db=(6, 10), kill=4, fuzz=1000, db_two=False)


def plan_for(layout: str, z: Sizes, seed: int, only: set[str] | None) -> list[tuple[str, Callable[[World], Row]]]:
    if layout == "one":
        steps = [
            ("delivery", lambda w: sc.delivery(w, *z.delivery, seed=seed)),
            ("vendor", lambda w: sc.vendor_faults(w, z.vendor_orders, seed=seed + 10, slow_timeouts=z.slow_timeouts)),
            ("reconcile", lambda w: sc.never_delivered(w, z.undelivered)),
            ("prefect", lambda w: sc.prefect_down(w, z.prefect[0], seed=seed + 20, outage=z.prefect[1])),
            ("db", lambda w: sc.db_down(w, z.db[0], seed=seed + 30, outage=z.db[1])),
            ("kill", lambda w: sc.kill_worker(w, z.kill, seed=seed + 40)),
            ("fuzz", lambda w: fuzz_row(w, z.fuzz, seed=seed + 50)),
        ]
    else:
        steps = [
            ("delivery", lambda w: sc.delivery(w, *z.delivery_two, seed=seed + 100)),
            ("kill", lambda w: sc.kill_worker(w, z.kill, seed=seed + 140)),
        ]
        if z.db_two:
            steps.append(("db", lambda w: sc.db_down(w, z.db[0] // 2, seed=seed + 130, outage=z.db[1])))
    return [s for s in steps if only is None or s[0] in only]


def fuzz_row(w: World, n: int, seed: int) -> Row:
    from sqlalchemy import select
    from sqlmodel import Session

    row = Row("receiver-fuzz", w.layout)
    res = Fuzzer(w.receivers[0], SECRET, seed).run(n)
    row.deliveries = res.requests
    row.seconds = res.seconds
    if res.accepted_forgeries:
        row.fail(f"{len(res.accepted_forgeries)} forgeries accepted: {res.accepted_forgeries[:3]}")
    if res.unexpected_5xx:
        kinds: dict[str, str] = {}
        for line in res.unexpected_5xx:
            kinds.setdefault(line.split(" ", 1)[0] + " " + line.split(": ", 1)[1][:3], line[:220])
        row.fail(f"{len(res.unexpected_5xx)} unexpected 5xx/no answer; one of each kind: {list(kinds.values())}")
    with Session(w.engine) as s:
        recorded = s.scalars(select(OrderRecord.order_id).where(
            OrderRecord.order_id.in_(sorted(res.forged_order_ids)))).all()  # type: ignore[attr-defined]
    if recorded:
        row.fail(f"forged orders recorded: {recorded[:5]}")
    row.notes.append(f"{res.requests} requests in {res.seconds:.0f} s ({res.forgeries} forgeries); answers "
                     + ", ".join(f"{k}:{v}" for k, v in sorted(res.by_status.items())))
    return row


def secrets_of(w: World) -> dict[str, str]:
    out = {"STRIPE_WEBHOOK_SECRET": SECRET, "STRIPE_API_KEY": DEFAULT_API_KEY, "MAILGUN_API_KEY": MAILGUN_KEY,
           "POSTNORD_API_KEY": POSTNORD_KEY, "ZOHO_CLIENT_SECRET": CLIENT_SECRET,
           "ZOHO_REFRESH_TOKEN": REFRESH_TOKEN, "SLACK_WEBHOOK_URL secret": SLACK_PATH.rsplit("/", 1)[1],
           "AWS_SECRET_ACCESS_KEY": AWS_SECRET}
    with w.zoho._state:
        for i, token in enumerate(w.zoho.tokens):
            out[f"Zoho access token #{i + 1}"] = token
    return out


def scan_row(w: World) -> Row:
    row = Row("secrets-in-logs", w.layout)
    t0 = time.monotonic()
    res = scan([w.root], w.prefect.api, secrets_of(w))
    for hit in res.hits:
        row.fail(hit)
    row.notes.append(f"{res.files} files, {res.artifacts} Prefect artifacts, {res.prefect_logs} Prefect log lines "
                     f"searched for {len(secrets_of(w))} secrets/tokens, webhook bodies and fuzz canaries")
    row.seconds = time.monotonic() - t0
    return row


def run_layout(layout: str, z: Sizes, root: Path, pg_base: str, seed: int, only: set[str] | None,
               report: Callable[[Row], None]) -> list[Row]:
    rows: list[Row] = []
    t0 = time.monotonic()
    w = World(layout, root / layout, seed)
    try:
        try:
            w.start(pg_base)
        except Exception as exc:  # noqa: BLE001 - report the layout as broken, go on
            row = Row("start", layout)
            row.fail(f"stack did not start: {exc}"[:800])
            report(row)
            return [row]
        print(f"[chaos] layout {layout}: stack up in {time.monotonic() - t0:.0f} s", file=sys.stderr, flush=True)
        for name, fn in plan_for(layout, z, seed, only):
            try:
                row = fn(w)
            except Exception as exc:  # noqa: BLE001 - one broken scenario must not hide the others
                row = Row(name, layout)
                row.fail(f"scenario crashed: {type(exc).__name__}: {exc}"[:1500])
                traceback.print_exc()
            rows.append(row)
            report(row)
        row = scan_row(w)
        rows.append(row)
        report(row)
        return rows
    finally:
        w.close()


COLUMNS = [("scenario", 22), ("layout", 6), ("deliveries", 10), ("orders", 6), ("runs", 5), ("deals", 5),
           ("shipments", 9), ("invoices", 8), ("emails", 6), ("duplicates", 10), ("lost", 4),
           ("needs_attention", 15), ("recovery s", 10), ("ok", 4)]


def table(rows: list[Row]) -> str:
    head = " | ".join(name.ljust(width) for name, width in COLUMNS)
    lines = [head, "-|-".join("-" * width for _, width in COLUMNS)]
    for r in rows:
        values = [r.scenario, r.layout, r.deliveries, r.orders, r.runs, r.deals, r.shipments, r.invoices, r.emails,
                  r.duplicates, r.lost, r.needs_attention, "-" if r.recovery_s is None else f"{r.recovery_s:.1f}",
                  "yes" if not r.violations else "NO"]
        lines.append(" | ".join(str(v).ljust(width) for v, (_, width) in zip(values, COLUMNS, strict=True)))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="a smaller version of every scenario (a few minutes)")
    ap.add_argument("--layout", choices=["one", "two", "both"], default="both")
    ap.add_argument("--only", help="comma-separated: delivery,vendor,reconcile,prefect,db,kill,fuzz")
    ap.add_argument("--pg", default=os.environ.get("CHAOS_PG_URL") or os.environ.get("ORDERPIPE_TEST_DATABASE_URL")
                    or DEFAULT_PG, help="a Postgres server for scratch chaos_* databases")
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--keep", action="store_true", help="keep the logs and data dirs")
    args = ap.parse_args(argv)
    z = QUICK if args.quick else FULL
    only = set(args.only.split(",")) if args.only else None
    root = Path(tempfile.mkdtemp(prefix="orderpipe-chaos-"))
    t0 = time.monotonic()
    print(f"[chaos] {'quick' if args.quick else 'full'} suite, seed {args.seed}, files under {root}",
          file=sys.stderr, flush=True)
    rows: list[Row] = []

    def report(row: Row) -> None:
        status = "ok" if not row.violations else "VIOLATED: " + "; ".join(row.violations)[:600]
        print(f"[chaos] {row.layout}/{row.scenario}: {row.seconds:.0f} s, {status}", file=sys.stderr, flush=True)

    try:
        for layout in (["one", "two"] if args.layout == "both" else [args.layout]):
            rows += run_layout(layout, z, root, args.pg, args.seed, only, report)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    total = time.monotonic() - t0
    print()
    print(f"orderpipe chaos suite ({'--quick' if args.quick else 'full'}, seed {args.seed}): {total / 60:.1f} min")
    print(table(rows))
    print()
    for r in rows:
        for note in r.notes:
            print(f"  {r.layout}/{r.scenario}: {note}")
    bad = [r for r in rows if r.violations]
    print()
    if bad:
        print("INVARIANTS VIOLATED:")
        for r in bad:
            for v in r.violations:
                print(f"  {r.layout}/{r.scenario}: {v}")
        return 1
    print("every invariant held")
    return 0
