"""In-memory fakes of orderpipe's small interfaces, for tests that need no server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from orderpipe.orders.prefect_api import RetryResult, RunInfo


@dataclass
class FakeRun:
    id: str
    deployment: str
    parameters: dict[str, Any]
    name: str
    tags: list[str]
    state_type: str = "SCHEDULED"
    run_count: int = 0
    messages: list[str] = field(default_factory=list)


class FakePrefect:
    """``PrefectApi`` in memory: runs by idempotency key, as the server keeps them.

    ``down = True`` makes every call raise as an unreachable server would; ``deployments``
    lists the deployments that exist (creating a run of another one is refused)."""

    def __init__(self, deployments: tuple[str, ...] = ("process-order/orderpipe", "process-refund/orderpipe")) -> None:
        self.deployments = set(deployments)
        self.runs: dict[str, FakeRun] = {}
        self._by_key: dict[str, str] = {}
        self.down = False
        self.batches = 0

    @contextmanager
    def connected(self) -> Iterator[FakePrefect]:
        self.batches += 1  # like Prefect's client, opening one does not reach the server yet
        yield self

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("All connection attempts failed")

    def create_run(self, deployment: str, *, parameters: dict[str, Any], idempotency_key: str, name: str,
                   tags: list[str]) -> str:
        self._check()
        if deployment not in self.deployments:
            raise LookupError(f"ObjectNotFound: deployment {deployment}")
        key = f"{deployment}:{idempotency_key}"
        if key not in self._by_key:
            run = FakeRun(id=str(uuid.uuid4()), deployment=deployment, parameters=parameters, name=name, tags=tags)
            self.runs[run.id] = run
            self._by_key[key] = run.id
        return self._by_key[key]

    def read_run(self, run_id: str) -> RunInfo:
        self._check()
        run = self.runs[run_id]
        return RunInfo(id=run.id, state_type=run.state_type, run_count=run.run_count)

    def retry_run(self, run_id: str, message: str, *, force: bool = False) -> RetryResult:
        self._check()
        run = self.runs[run_id]
        accepted = force or run.state_type in ("FAILED", "CRASHED", "COMPLETED", "CANCELLED")
        count = run.run_count
        if accepted:
            run.state_type, run.messages = "SCHEDULED", [*run.messages, message]
        return RetryResult(accepted=accepted, run_count=count)

    # ---- what a test does to the runs -------------------------------------------------------
    def finish(self, run_id: str, state_type: str, runs: int = 1) -> None:
        """The run ran ``runs`` more times and ended ``state_type``."""
        run = self.runs[run_id]
        run.state_type, run.run_count = state_type, run.run_count + runs

    def run_of(self, idempotency_key: str, deployment: str = "process-order/orderpipe") -> FakeRun:
        return self.runs[self._by_key[f"{deployment}:{idempotency_key}"]]
