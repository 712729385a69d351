"""The few Prefect API calls orderpipe makes about runs, behind one small interface.

The dispatcher creates runs from deployments, reconciliation reads runs and puts failed
ones back to ``AwaitingRetry``, ``orderpipe replay`` does the same on request. They take a
``PrefectApi``; ``PrefectClientApi`` is the real one (Prefect's sync client), tests pass
``tests.fakes.FakePrefect`` (in memory), as the connectors have their local stand-ins.

Prefect is imported only when a real call is made (the receiver never makes one).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol
from uuid import UUID


@dataclass(frozen=True)
class RunInfo:
    """What orderpipe reads of a flow run: its id, state type (``FAILED``...) and run count."""

    id: str
    state_type: str | None
    run_count: int


@dataclass(frozen=True)
class RetryResult:
    accepted: bool  # Prefect accepted the AwaitingRetry state
    run_count: int  # runs so far (before this retry)


class PrefectApi(Protocol):
    def connected(self) -> Any:
        """A context manager for a batch of calls (one client for all of them); yields the api."""

    def create_run(self, deployment: str, *, parameters: dict[str, Any], idempotency_key: str, name: str,
                   tags: list[str]) -> str:
        """Create (or find, by idempotency key) a run of ``deployment`` (``flow/deployment``); its id."""

    def read_run(self, run_id: str) -> RunInfo: ...

    def retry_run(self, run_id: str, message: str, *, force: bool = False) -> RetryResult:
        """Put a finished run back to AwaitingRetry, the same run (what the UI's Retry button does)."""


class PrefectClientApi:
    """``PrefectApi`` over Prefect's ``SyncPrefectClient``: the one given (the worker keeps
    one), or one opened per ``connected()`` batch (or per call, outside a batch)."""

    def __init__(self, client: Any = None) -> None:
        self._client = client
        self._deployment_ids: dict[str, UUID] = {}

    @contextmanager
    def connected(self) -> Iterator[PrefectClientApi]:
        if self._client is not None:
            yield self
            return
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            self._client = client
            try:
                yield self
            finally:
                self._client = None

    @contextmanager
    def _call(self) -> Iterator[Any]:
        if self._client is not None:
            yield self._client
        else:
            with self.connected():
                yield self._client

    def create_run(self, deployment: str, *, parameters: dict[str, Any], idempotency_key: str, name: str,
                   tags: list[str]) -> str:
        with self._call() as client:
            try:
                if deployment not in self._deployment_ids:
                    self._deployment_ids[deployment] = client.read_deployment_by_name(deployment).id
                run = client.create_flow_run_from_deployment(
                    self._deployment_ids[deployment], parameters=parameters, idempotency_key=idempotency_key,
                    name=name, tags=tags,
                )
            except Exception:
                self._deployment_ids.pop(deployment, None)  # it may have been re-created: look it up again
                raise
            return str(run.id)

    def read_run(self, run_id: str) -> RunInfo:
        with self._call() as client:
            run = client.read_flow_run(run_id)
        return RunInfo(id=str(run.id), state_type=run.state_type.value if run.state_type is not None else None,
                       run_count=run.run_count)

    def retry_run(self, run_id: str, message: str, *, force: bool = False) -> RetryResult:
        from prefect.states import Scheduled

        with self._call() as client:
            run = client.read_flow_run(run_id)
            result = client.set_flow_run_state(run.id, Scheduled(name="AwaitingRetry", message=message), force=force)
        return RetryResult(accepted=result.status.value == "ACCEPT", run_count=run.run_count)
