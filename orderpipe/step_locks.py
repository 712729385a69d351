"""One lock per order and step, across processes and machines: Prefect's LockManager for the
order steps' cache (SERIALIZABLE transactions, tasks/step_policy.py).

Two runs of the same order (a replay beside a live run, two workers, a re-driven run whose
old process still lives) never run the same step at once: the second waits for the first,
then finds its committed result in the cache and does not call the vendor again.

- Postgres (`DATABASE_URL`, shared by every machine): a session-level advisory lock
  (`pg_try_advisory_lock`) on a connection of its own, held while the step runs;
- SQLite (one machine): `flock` on a file per key under `<data dir>/step-locks/`.

Either lock belongs to a live connection or open file: a process that dies (kill -9, a lost
machine) releases it at once, so no stale lock ever blocks a re-drive. `hold_timeout` is
therefore not needed and ignored.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

POLL_SECONDS = 0.1
_held: dict[str, _Held] = {}  # key -> the lock this process holds (module-level: survives copies)
_held_lock = threading.Lock()


@dataclass
class _Held:
    holder: str
    release: Any  # () -> None


def lock_number(key: str) -> int:
    """A stable signed 64-bit number for an advisory lock."""
    return int.from_bytes(hashlib.sha256(f"orderpipe-step:{key}".encode()).digest()[:8], "big", signed=True)


class _FileLocks:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def _path(self, key: str) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        return self.directory / (hashlib.sha256(key.encode()).hexdigest()[:32] + ".lock")

    def try_acquire(self, key: str) -> Any:
        fd = os.open(self._path(key), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return lambda: os.close(fd)  # closing the descriptor releases the flock

    def is_locked(self, key: str) -> bool:
        release = self.try_acquire(key)
        if release is None:
            return True
        release()
        return False


class _AdvisoryLocks:
    def __init__(self, db_url: str) -> None:
        from sqlalchemy.engine import make_url

        self.conninfo = make_url(db_url).set(drivername="postgresql").render_as_string(hide_password=False)

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5)

    def try_acquire(self, key: str) -> Any:
        conn = self._connect()
        try:
            got = conn.execute("SELECT pg_try_advisory_lock(%s)", (lock_number(key),)).fetchone()[0]
        except BaseException:
            conn.close()
            raise
        if not got:
            conn.close()
            return None

        def release() -> None:
            try:
                conn.execute("SELECT pg_advisory_unlock(%s)", (lock_number(key),))
            finally:
                conn.close()  # a lost connection released it anyway

        return release

    def is_locked(self, key: str) -> bool:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
                "AND classid = %s AND objid = %s", _halves(lock_number(key))).fetchone()
        return bool(row and row[0])


def _halves(number: int) -> tuple[int, int]:
    """pg_locks shows a bigint advisory key as (classid, objid): its high and low 32 bits (oid)."""
    unsigned = number & 0xFFFFFFFFFFFFFFFF
    return unsigned >> 32, unsigned & 0xFFFFFFFF


class OrderStepLocks:
    """Prefect `LockManager` (prefect.locking.protocol) for orderpipe's order steps.

    The backend follows the process's settings (read on first use, so a flow-run process uses
    its own `DATABASE_URL` and data dir). Copies share the module-level state (Prefect
    deep-copies cache policies)."""

    def __init__(self, backend: Any = None) -> None:
        self._fixed = backend
        self._cached: tuple[Any, Any] | None = None

    def __deepcopy__(self, _memo: dict[int, Any]) -> OrderStepLocks:
        return self

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (OrderStepLocks, ())

    @staticmethod
    def for_settings(settings: Any) -> Any:
        if settings.is_postgres:
            return _AdvisoryLocks(settings.db_url)
        return _FileLocks(settings.data_dir / "step-locks")

    def _backend(self) -> Any:
        if self._fixed is not None:
            return self._fixed
        from orderpipe import bootstrap
        from orderpipe.settings import load_settings

        where = (id(bootstrap._preset), os.environ.get("DATABASE_URL"), os.environ.get("ORDERPIPE_DATA_DIR"))
        if self._cached is None or self._cached[0] != where:
            self._cached = (where, self.for_settings(bootstrap._preset or load_settings(connectors=False)))
        return self._cached[1]

    # ---- LockManager -------------------------------------------------------------------
    def acquire_lock(self, key: str, holder: str, acquire_timeout: float | None = None,
                     hold_timeout: float | None = None) -> bool:
        with _held_lock:
            mine = _held.get(key)
            if mine is not None and mine.holder == holder:
                return True
        backend = self._backend()
        deadline = None if acquire_timeout is None else time.monotonic() + acquire_timeout
        while True:
            release = backend.try_acquire(key)
            if release is not None:
                with _held_lock:
                    _held[key] = _Held(holder, release)
                return True
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)

    async def aacquire_lock(self, key: str, holder: str, acquire_timeout: float | None = None,
                            hold_timeout: float | None = None) -> bool:
        return await asyncio.to_thread(self.acquire_lock, key, holder, acquire_timeout, hold_timeout)

    def release_lock(self, key: str, holder: str) -> None:
        with _held_lock:
            mine = _held.get(key)
            if mine is None or mine.holder != holder:
                raise ValueError(f"lock {key!r} is not held by {holder!r}")
            del _held[key]
        mine.release()

    def is_locked(self, key: str) -> bool:
        with _held_lock:
            if key in _held:
                return True
        return bool(self._backend().is_locked(key))

    def is_lock_holder(self, key: str, holder: str) -> bool:
        with _held_lock:
            mine = _held.get(key)
            return mine is not None and mine.holder == holder

    def wait_for_lock(self, key: str, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.is_locked(key):
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(POLL_SECONDS)
        return True

    async def await_for_lock(self, key: str, timeout: float | None = None) -> bool:
        return await asyncio.to_thread(self.wait_for_lock, key, timeout)
