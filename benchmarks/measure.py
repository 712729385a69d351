"""The measurement both systems go through: single runs one at a time, then a burst.

A *target* submits one unit of work (a stock flow run created through the API, or an
orderpipe order posted as a signed webhook) and says how to find its flow run in the
Prefect API (by id or by run name). Latency = the run's end_time (Prefect server clock,
same machine) minus the wall time just before the submitting request was sent.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from benchmarks import procstats
from benchmarks.common import FINAL, PrefectApi, Progress, median, pct, run_result


@dataclass
class Submitted:
    key: str  # flow run id or flow run name
    sent: float  # time.time() just before the request
    answer_ms: float  # how long the submitting request took


@dataclass
class Target:
    label: str
    api: PrefectApi
    key_kind: str  # "ids" or "names"
    submit: Callable[[str], Submitted]  # unique tag -> submitted unit
    roots: Callable[[], list[int]]
    classifier: procstats.Classifier
    db_size: Callable[[], int | None]
    extra: dict[str, Any] = field(default_factory=dict)

    def final_runs(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        runs = self.api.runs(final_only=True, **{self.key_kind: keys})  # type: ignore[arg-type]
        field_ = "id" if self.key_kind == "ids" else "name"
        return {r[field_]: run_result(r) for r in runs if (r.get("state") or {}).get("type") in FINAL}


def wait_final(target: Target, subs: list[Submitted], timeout: float, progress: Progress | None = None,
               poll: float = 1.0) -> dict[str, dict[str, Any]]:
    pending = {s.key for s in subs}
    done: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        found = target.final_runs(sorted(pending))
        done.update(found)
        pending -= set(found)
        if progress is not None:
            failed = sum(1 for r in done.values() if r["state"] != "COMPLETED")
            progress.update(f"done {len(done)}/{len(subs)}" + (f", {failed} not completed" if failed else ""),
                            completed=len(done), total=len(subs))
        if pending:
            time.sleep(poll)
    return done


def singles(target: Target, n: int, timeout: float, tag: str) -> dict[str, Any]:
    """n units one at a time, each waited for, with a random 0-0.5 s gap (decorrelates poll phase)."""
    lat: list[float] = []
    states: list[str] = []
    prog = Progress(f"{target.label} {tag}")
    for i in range(n):
        prog.update(f"{i}/{n}", completed=i, total=n)
        sub = target.submit(f"{tag}{i}")
        res = wait_final(target, [sub], timeout, poll=0.2).get(sub.key)
        if res is None:
            states.append("TIMEOUT")
            continue
        states.append(res["state"])
        if res["state"] == "COMPLETED" and res["end"] is not None:
            lat.append(res["end"] - sub.sent)
        time.sleep(random.uniform(0, 0.5))
    prog.done(f"{n} done, p50 {_fmt(median(lat))} s" + ("" if states.count("COMPLETED") == n else f"; {states}"))
    return {"n": n, "completed": states.count("COMPLETED"), "latency_s": [round(x, 3) for x in lat],
            "p50_s": _r(median(lat)), "min_s": _r(min(lat) if lat else None), "max_s": _r(max(lat) if lat else None)}


def burst(target: Target, n: int, timeout: float, tag: str = "b") -> dict[str, Any]:
    """n units submitted back to back, then waited for; CPU, memory and DB growth around it."""
    roots = target.roots()
    db_before = target.db_size()
    pg_roots = procstats.postgres_roots()
    pg_before = procstats.cpu_snapshot(pg_roots, _postgres)
    machine_before, self_before = procstats.machine_cpu(), procstats.self_cpu()
    cpu_before = procstats.cpu_snapshot(roots, target.classifier)
    prog = Progress(f"{target.label} burst")
    subs: list[Submitted] = []
    with procstats.MemorySampler(roots, target.classifier) as sampler:
        t0 = time.time()
        for i in range(n):
            subs.append(target.submit(f"{tag}{i}"))
            if i % 5 == 0 or i == n - 1:
                prog.update(f"submitted {i + 1}/{n}", completed=0, total=n)
        submit_s = time.time() - t0
        done = wait_final(target, subs, timeout, prog)
        cpu_after = procstats.cpu_snapshot(roots, target.classifier)
        machine_after, self_after = procstats.machine_cpu(), procstats.self_cpu()
        pg_after = procstats.cpu_snapshot(pg_roots, _postgres)
        sampler.sample()
    db_after = target.db_size()
    completed = [s for s in subs if done.get(s.key, {}).get("state") == "COMPLETED"]
    lat = [done[s.key]["end"] - s.sent for s in completed]
    first_sent = min(s.sent for s in subs)
    last_end = max((done[s.key]["end"] for s in completed), default=None)
    span = (last_end - first_sent) if last_end else None
    cpu = procstats.cpu_delta(cpu_before, cpu_after)
    busy = machine_after[0] - machine_before[0]
    wall = machine_after[1] - machine_before[1]
    driver = self_after - self_before
    pg_cpu = procstats.cpu_delta(pg_before, pg_after).get("postgres", 0.0)
    per_order = {role: round(sec / len(completed), 3) for role, sec in cpu.items()} if completed else {}
    not_completed = {s.key: done.get(s.key, {}).get("state", "TIMEOUT") for s in subs if s not in completed}
    prog.done(f"{len(completed)}/{n} completed in {_fmt(span)} s"
              + (f"; not completed: {len(not_completed)}" if not_completed else ""))
    answers = [s.answer_ms for s in subs]
    peak = sampler.peak
    return {
        "n": n,
        "completed": len(completed),
        "not_completed": dict(list(not_completed.items())[:20]),
        "submit_s": round(submit_s, 2),
        "submit_answer_ms": {"p50": _r(median(answers), 1), "p95": _r(pct(answers, 95), 1)},
        "span_s": _r(span, 2),
        "per_min": _r(len(completed) / span * 60 if span else None, 1),
        "latency_s": {"p50": _r(median(lat)), "p95": _r(pct(lat, 95)), "min": _r(min(lat) if lat else None),
                      "max": _r(max(lat) if lat else None)},
        "cpu_s": cpu,
        "cpu_s_per_unit": per_order,
        "cpu_s_by_command": procstats.label_delta(cpu_before, cpu_after),
        "cpu_window_s": round(cpu_after.at - cpu_before.at, 2),
        # the whole machine over the same window: how noisy it was, and who else used it
        "machine": {
            "busy_pct": round(100 * busy / wall, 1) if wall else None,
            "busy_cpu_s": round(busy, 2),
            "postgres_cluster_cpu_s": round(pg_cpu, 2),  # every database of the cluster, not only ours
            "bench_driver_cpu_s": round(driver, 2),  # this process: posting, the Stripe stand-in, polling
            "other_cpu_s": round(busy - sum(cpu.values()) - driver - pg_cpu, 2),  # other users of the box
            "other_pct": round(100 * (busy - sum(cpu.values()) - driver - pg_cpu) / wall, 1) if wall else None,
        },
        "peak_rss_mib": {r: round(v / 2**20, 1) for r, v in peak.rss.items()},
        "peak_pss_mib": ({r: round(v / 2**20, 1) for r, v in peak.pss.items()} if peak.pss_available else None),
        "peak_procs": peak.procs,
        "memory_samples": peak.samples,
        "prefect_db_bytes": {"before": db_before, "after": db_after},
        "prefect_db_kib_per_unit": (round((db_after - db_before) / 1024 / n, 1)
                                    if db_before is not None and db_after is not None else None),
    }


def _postgres(_lineage: list[str]) -> str:
    return "postgres"


def _r(x: float | None, nd: int = 2) -> float | None:
    return None if x is None else round(x, nd)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"
