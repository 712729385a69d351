"""Waking the dispatchers when the receiver accepted an order, on one machine or many.

Postgres: the receiver's `pg_notify` goes out with the transaction that recorded the order,
and every worker LISTENs on its own connection (no shared disk). SQLite is a one-machine
database anyway: the receiver touches a file in the data dir and the worker watches its
mtime. Either way the dispatcher also polls, so a lost wake-up only costs a poll interval.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, text

CHANNEL = "orderpipe_dispatch"
log = logging.getLogger("orderpipe.wakeup")


def wake_file(data_dir: Path) -> Path:
    return data_dir / "dispatch.wake"


def notify_in_transaction(conn: Connection, order_id: str) -> None:
    """Postgres: queue a wake-up that is delivered when the recording transaction commits."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": order_id[:200]})


def wake_after_commit(engine: Engine, data_dir: Path) -> None:
    """SQLite: touch the wake file (Postgres already notified inside the transaction)."""
    if engine.dialect.name == "postgresql":
        return
    try:
        wake_file(data_dir).touch()
    except OSError:  # the poll picks the order up anyway
        pass


class Listener:
    """What the worker waits on: `fileno()` for select() (Postgres) and `poll()` -> woken?"""

    def __init__(self, engine: Engine, data_dir: Path) -> None:
        self._file = wake_file(data_dir)
        self._mtime = self._file_mtime()
        self._conn: Any = None
        self._db_url = engine.url if engine.dialect.name == "postgresql" else None
        self._connect()

    def _file_mtime(self) -> float:
        try:
            return float(self._file.stat().st_mtime_ns)
        except OSError:
            return 0.0

    def _connect(self) -> None:
        if self._db_url is None:
            return
        import psycopg

        try:
            conninfo = self._db_url.set(drivername="postgresql").render_as_string(hide_password=False)
            self._conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=5)
            self._conn.execute(f"LISTEN {CHANNEL}")
        except Exception as exc:  # noqa: BLE001 - the poll still dispatches; reconnect later
            log.warning("LISTEN %s failed (%s); polling only", CHANNEL, str(exc).splitlines()[0] if str(exc) else exc)
            self._conn = None

    def fileno(self) -> int | None:
        return self._conn.fileno() if self._conn is not None else None

    def poll(self) -> bool:
        """True when a wake-up arrived since the last call (drains pending notifications)."""
        woken = False
        mtime = self._file_mtime()
        if mtime != self._mtime:
            self._mtime, woken = mtime, True
        if self._db_url is not None:
            if self._conn is None or self._conn.closed:
                self._connect()
                return True  # notifications may have been missed while disconnected
            try:
                for _ in self._conn.notifies(timeout=0, stop_after=1000):
                    woken = True
            except Exception as exc:  # noqa: BLE001 - connection lost: reconnect next time
                log.warning("LISTEN connection lost: %s", str(exc).splitlines()[0] if str(exc) else exc)
                self.close()
        return woken

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001
                pass
            self._conn = None
