"""Look for what must never be written down: the configured secrets and tokens, webhook bodies.

Searched: every file under the suite's root (every process's log, the data dirs with their
Prefect home, results, outbox, labels and invoices) and, through the Prefect API, every
artifact and every flow/task-run log line the runs shipped to the server.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import httpx

from chaos.fuzz import CANARY

# Only whole webhook bodies carry these keys together; a log line quoting one is a body.
BODY_MARKERS = ('"pending_webhooks"', '"api_version": "2025')


@dataclass
class ScanResult:
    files: int = 0
    artifacts: int = 0
    prefect_logs: int = 0
    hits: list[str] = field(default_factory=list)


def _check(text: str, where: str, secrets: dict[str, str], out: ScanResult) -> None:
    for name, value in secrets.items():
        if value and value in text:
            out.hits.append(f"{name} in {where}")
    if all(m in text for m in BODY_MARKERS):
        out.hits.append(f"a webhook body in {where}")
    if CANARY in text:
        out.hits.append(f"part of a fuzzed webhook body ({CANARY}) in {where}")


def scan(roots: list[Path], api: str | None, secrets: dict[str, str]) -> ScanResult:
    out = ScanResult()
    for root in roots:
        for path in root.rglob("*"):
            if not path.is_file() or path.stat().st_size > 64 * 1024 * 1024:
                continue
            out.files += 1
            _check(path.read_bytes().decode("utf-8", "replace"), str(path.relative_to(root.parent)), secrets, out)
    if api:
        with httpx.Client(base_url=api.rstrip("/") + "/", timeout=60) as client:
            for what in ("artifacts", "logs"):
                offset = 0
                while True:
                    r = client.post(f"{what}/filter", json={"limit": 200, "offset": offset})
                    r.raise_for_status()
                    page = r.json()
                    for item in page:
                        text = str(item.get("data") if what == "artifacts" else item.get("message"))
                        key = item.get("key") or item.get("flow_run_id")
                        _check(text, f"Prefect {what[:-1]} {key}", secrets, out)
                    if what == "artifacts":
                        out.artifacts += len(page)
                    else:
                        out.prefect_logs += len(page)
                    if len(page) < 200:
                        break
                    offset += 200
    out.hits = sorted(set(out.hits))
    return out
