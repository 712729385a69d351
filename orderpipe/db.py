"""Engine, sessions and migrations for orderpipe's database (SQLite or Postgres)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel

from orderpipe import tables  # noqa: F401  (registers the tables on SQLModel.metadata)

MIGRATIONS = Path(__file__).with_name("migrations")

_engines: dict[str, Engine] = {}
_readers: dict[int, Engine] = {}
READ_ONLY = "orderpipe_read_only"
_lock = threading.Lock()


class DatabaseUnavailable(RuntimeError):
    """orderpipe's database cannot be reached or written."""


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("sqlite:///", 1)[1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _rec: Any) -> None:
            # Let SQLAlchemy, not pysqlite, open transactions, so BEGIN IMMEDIATE below holds.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            # Writes take the write lock at the start: read-then-write transactions (invoice
            # numbers, upserts) are then serialised instead of failing with "database is locked".
            # Read-only transactions (reader(engine)) stay deferred: under WAL they never wait
            # for, nor block, a writer.
            if conn.get_execution_options().get(READ_ONLY):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args={"connect_timeout": 5})


_inherited_pools: list[object] = []


def _after_fork_in_child() -> None:
    """A forked flow-run process must never use its parent's pooled connections, nor close
    them: closing runs the driver's goodbye on a socket or SQLite file the parent still uses
    (psycopg sends Terminate; SQLite may checkpoint). The old pools are kept referenced, so
    they are never collected; the child leaves with os._exit."""
    global _lock
    _lock = threading.Lock()
    for engine in _engines.values():
        _inherited_pools.append(engine.pool)
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)


def get_engine(url: str) -> Engine:
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _engines[url] = make_engine(url)
        return engine


def reader(engine: Engine) -> Engine:
    """The same engine (same pool) for reads: on SQLite its transactions begin deferred (no
    write lock); on Postgres each statement runs in autocommit (no BEGIN/ROLLBACK round
    trips). Never write through it."""
    found = _readers.get(id(engine))
    if found is None or found._proxied is not engine:  # type: ignore[attr-defined]
        options: dict[str, Any] = {READ_ONLY: True}
        if engine.dialect.name == "postgresql":
            options["isolation_level"] = "AUTOCOMMIT"
        found = _readers[id(engine)] = engine.execution_options(**options)
    return found


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A transaction: commit on success, roll back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def insert_ignore(session: Session, model: type[SQLModel], values: dict[str, Any]) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING; True when a row was inserted."""
    table = model.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(table).values(**values).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(table).values(**values).on_conflict_do_nothing()
    else:  # pragma: no cover - only the two supported databases
        raise RuntimeError(f"unsupported database {dialect}")
    # RETURNING tells reliably whether a row went in (psycopg reports rowcount -1 here).
    pk = list(table.primary_key.columns)[0]
    return session.execute(stmt.returning(pk)).first() is not None


def write_one(engine: Engine, statement: Any) -> None:
    """One statement that is a whole transaction by itself (an UPDATE, an upsert): on Postgres
    in autocommit, one round trip instead of BEGIN, the statement and COMMIT; on SQLite in
    the usual BEGIN IMMEDIATE transaction (no round trips there)."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(statement)
    else:
        with engine.begin() as conn:
            conn.execute(statement)


def upsert(engine: Engine, model: type[SQLModel], values: dict[str, Any], update: dict[str, Any]) -> None:
    """INSERT values, or on a primary-key conflict UPDATE the row with `update` (values may be
    SQL expressions of the table's columns), in one statement."""
    table = model.__table__  # type: ignore[attr-defined]
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    statement = insert(table).values(**values).on_conflict_do_update(
        index_elements=list(table.primary_key.columns), set_=update)
    write_one(engine, statement)


def ping(engine: Engine) -> None:
    try:
        with reader(engine).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any driver error means "unavailable"
        raise DatabaseUnavailable(str(exc).splitlines()[0]) from exc


def migrate(url: str) -> None:
    """Bring the schema to the newest Alembic revision (run at start-up)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["engine"] = get_engine(url)
    command.upgrade(cfg, "head")


def aware(dt: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes: they are UTC."""
    if dt is None or dt.tzinfo is not None:
        return dt
    return dt.replace(tzinfo=UTC)
