"""CPU and memory of process trees, read from /proc (Linux only, no dependencies).

A tree is every live process descending from a root pid. Each process gets a *role* from
a classifier over its own and its ancestors' command lines (e.g. anything under
`prefect server start` -> "server").

CPU of a tree at one instant = sum over its live processes of utime+stime+cutime+cstime.
A child that exits and is reaped by a process of the tree moves its CPU into the reaper's
cutime/cstime, so nothing is lost or counted twice as long as the tree reaps its own
children (orderpipe's runner/worker reap their flow-run children). Processes reparented
to init (double-forked daemons) would be missed. Zombies still show their own times.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")

Classifier = Callable[[list[str]], str]  # command lines of the process and its ancestors (own first) -> role


@dataclass(frozen=True)
class Proc:
    pid: int
    ppid: int
    starttime: int  # clock ticks since boot: (pid, starttime) identifies a process across pid reuse
    cpu_ticks: int  # utime + stime + cutime + cstime
    cmdline: str


def _read_stat(pid: int) -> Proc | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm may contain spaces and parentheses: fields start after the last ')'
    rest = raw[raw.rindex(")") + 2:].split()
    # rest[0] is field 3 (state); utime is field 14 -> rest[11]
    ppid = int(rest[1])
    utime, stime, cutime, cstime = (int(x) for x in rest[11:15])
    starttime = int(rest[19])
    comm = raw[raw.index("(") + 1:raw.rindex(")")]
    return Proc(pid, ppid, starttime, utime + stime + cutime + cstime, cmd or f"[{comm}]")


def all_procs() -> dict[int, Proc]:
    procs: dict[int, Proc] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            p = _read_stat(int(name))
            if p is not None:
                procs[p.pid] = p
    return procs


def tree(roots: Iterable[int], procs: dict[int, Proc] | None = None) -> dict[int, Proc]:
    """Live processes under (and including) the roots."""
    procs = all_procs() if procs is None else procs
    children: dict[int, list[int]] = {}
    for p in procs.values():
        children.setdefault(p.ppid, []).append(p.pid)
    out: dict[int, Proc] = {}
    stack = [r for r in roots if r in procs]
    while stack:
        pid = stack.pop()
        if pid in out:
            continue
        out[pid] = procs[pid]
        stack.extend(children.get(pid, []))
    return out


def classify(members: dict[int, Proc], classifier: Classifier) -> dict[int, str]:
    roles: dict[int, str] = {}
    for pid in members:
        lineage, cur = [], pid
        while cur in members:
            lineage.append(members[cur].cmdline)
            cur = members[cur].ppid
        roles[pid] = classifier(lineage)
    return roles


def short_label(cmdline: str) -> str:
    """`/x/.venv/bin/python -m prefect.engine` -> `prefect.engine`; for the per-command breakdown."""
    argv = cmdline.split()
    if not argv:
        return "?"
    if "-m" in argv[:3]:
        i = argv.index("-m")
        tail = argv[i + 1:i + 3]
        if tail and tail[0] in ("orderpipe.cli", "prefect") and len(tail) > 1:
            return " ".join(tail)
        return tail[0] if tail else "python"
    words = [os.path.basename(a) for a in argv[:3]]
    if words[0].startswith("python") and len(words) > 1:
        words = words[1:]
    return " ".join(words[:2])


@dataclass
class CpuSnapshot:
    at: float
    by_role: dict[str, float]  # CPU-seconds
    by_label: dict[str, float]
    pids: dict[tuple[int, int], str]  # (pid, starttime) -> role


def cpu_snapshot(roots: Iterable[int], classifier: Classifier) -> CpuSnapshot:
    members = tree(roots)
    roles = classify(members, classifier)
    by_role: dict[str, float] = {}
    by_label: dict[str, float] = {}
    for pid, p in members.items():
        sec = p.cpu_ticks / CLK_TCK
        by_role[roles[pid]] = by_role.get(roles[pid], 0.0) + sec
        label = f"{roles[pid]}: {short_label(p.cmdline)}"
        by_label[label] = by_label.get(label, 0.0) + sec
    return CpuSnapshot(time.time(), by_role, by_label,
                       {(pid, p.starttime): roles[pid] for pid, p in members.items()})


def cpu_delta(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    roles = set(before.by_role) | set(after.by_role)
    return {r: round(after.by_role.get(r, 0.0) - before.by_role.get(r, 0.0), 3) for r in sorted(roles)}


def label_delta(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """Per command line; approximate (a child reaped in the window moves to its parent's label,
    which can make the child's label negative). The per-role totals are exact."""
    labels = set(before.by_label) | set(after.by_label)
    d = {k: round(after.by_label.get(k, 0.0) - before.by_label.get(k, 0.0), 3) for k in labels}
    return dict(sorted(d.items(), key=lambda kv: -kv[1]))


def _memory(pid: int) -> tuple[int, int | None]:
    """(RSS bytes, PSS bytes or None)."""
    rss = 0
    try:
        with open(f"/proc/{pid}/statm") as f:
            rss = int(f.read().split()[1]) * PAGE
    except (FileNotFoundError, ProcessLookupError, PermissionError, IndexError):
        return 0, None
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return rss, int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return rss, None


@dataclass
class MemoryPeak:
    rss: dict[str, int] = field(default_factory=dict)  # role -> peak of the summed RSS, bytes
    pss: dict[str, int] = field(default_factory=dict)
    procs: dict[str, int] = field(default_factory=dict)  # role -> peak number of live processes
    samples: int = 0
    pss_available: bool = True


class MemorySampler:
    """Samples the trees every `interval` s in a thread; keeps the peak per role of summed RSS/PSS."""

    def __init__(self, roots: Iterable[int], classifier: Classifier, interval: float = 0.25) -> None:
        self.roots = list(roots)
        self.classifier = classifier
        self.interval = interval
        self.peak = MemoryPeak()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def sample(self) -> None:
        members = tree(self.roots)
        roles = classify(members, self.classifier)
        rss: dict[str, int] = {}
        pss: dict[str, int] = {}
        count: dict[str, int] = {}
        for pid, role in roles.items():
            r, p = _memory(pid)
            if r == 0:
                continue
            rss[role] = rss.get(role, 0) + r
            if p is None:
                self.peak.pss_available = False
            else:
                pss[role] = pss.get(role, 0) + p
            count[role] = count.get(role, 0) + 1
        for role in rss:
            self.peak.rss[role] = max(self.peak.rss.get(role, 0), rss[role])
            self.peak.pss[role] = max(self.peak.pss.get(role, 0), pss.get(role, 0))
            self.peak.procs[role] = max(self.peak.procs.get(role, 0), count[role])
        self.peak.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)


def descendants_ids(roots: Iterable[int]) -> set[tuple[int, int]]:
    """(pid, starttime) of every live process under the roots, to make sure they are gone later."""
    return {(pid, p.starttime) for pid, p in tree(roots).items()}


def still_alive(ids: Iterable[tuple[int, int]]) -> list[int]:
    alive = []
    for pid, start in ids:
        p = _read_stat(pid)
        if p is not None and p.starttime == start and not _is_zombie(pid):
            alive.append(pid)
    return alive


def _is_zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            raw = f.read()
        return raw[raw.rindex(")") + 2] in "ZX"
    except (FileNotFoundError, ProcessLookupError):
        return True


def machine_cpu() -> tuple[float, float]:
    """(busy, total) CPU-seconds of the whole machine since boot, summed over CPUs (/proc/stat)."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:9]]  # user nice system idle iowait irq softirq steal
    total = sum(vals)
    return (total - vals[3] - vals[4]) / CLK_TCK, total / CLK_TCK


def self_cpu() -> float:
    """CPU-seconds of this process (all its threads: the driver, the Stripe stand-in, the sampler)."""
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def postgres_roots() -> list[int]:
    """The postmaster(s) on this machine: postgres processes whose parent is not one."""
    procs = all_procs()

    def is_pg(p: Proc) -> bool:
        first = p.cmdline.split(" ", 1)[0]
        return first.endswith("/postgres") or first == "postgres" or p.cmdline.startswith("postgres:")

    return [p.pid for p in procs.values() if is_pg(p) and not (p.ppid in procs and is_pg(procs[p.ppid]))]
