"""Environment for every Prefect process orderpipe starts (server, runner, flow runs, CLI)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import make_url

from orderpipe.settings import Settings


def prefect_home(settings: Settings) -> Path:
    return settings.data_dir / "prefect"


def api_url(settings: Settings) -> str:
    return (settings.prefect_api_url or f"http://127.0.0.1:{settings.prefect_server_api_port}/api").rstrip("/")


def ui_url(settings: Settings) -> str:
    return api_url(settings).removesuffix("/api")


def prefect_database_url(settings: Settings) -> str | None:
    """When orderpipe runs on Postgres the Prefect server does too, in a sibling database."""
    if not settings.is_postgres:
        return None
    url = make_url(settings.db_url)
    return url.set(drivername="postgresql+asyncpg", database=f"{url.database}_prefect").render_as_string(
        hide_password=False
    )


# Server services orderpipe does not use. On SQLite each of them is another writer, and the
# server answers a write that loses the lock with HTTP 503, which the client retries after
# 2, 4, 8... s: with them on, one order took 7-19 s end to end; with them off, 1.1-1.2 s
# (measured in-process, one order at a time). Kept: scheduler (reconcile's schedule),
# task-run recorder (the UI's task runs), repossessor, cleanup.
SERVER_SERVICES_OFF = {
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",  # automations
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",  # marks waiting runs Late
    "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",  # work-pool worker heartbeats
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",  # paused flow runs
    "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED": "false",  # cancelled parents' children
    # The events table: every state change of every task and flow run again, as events with
    # their resources (about 200 KiB of the 250 KiB each order added to Prefect's database,
    # 246 -> 50 KiB per order in `make bench`). The task-run recorder still turns the same
    # events into task runs, so the UI's flow run page, task runs, logs and artifacts are all
    # there; what goes is the UI's event feed. An operator's own setting wins (orderpipe/stack.py).
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED": "false",
}


# Writes the server batches instead of one transaction per event. Every task-run state change
# arrives as an event that the task-run recorder turns into rows; Prefect's default records
# them one at a time (batch size 1), the largest single cost of an order on the server
# (about a fifth of its CPU, py-spy, 120-order burst on Postgres). Task runs then show in the
# UI up to a second late; the run's own state is never delayed.
SERVER_BATCHING = {
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "50",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_FLUSH_INTERVAL": "1",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "200",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE": "50",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL": "1",
}
SERVER_ENV = {**SERVER_SERVICES_OFF, **SERVER_BATCHING}


def base_env(settings: Settings) -> dict[str, str]:
    home = prefect_home(settings)
    env = {
        "PREFECT_HOME": str(home),
        "PREFECT_API_URL": api_url(settings),
        "PREFECT_LOCAL_STORAGE_PATH": str(home / "storage"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE": "false",
        "PREFECT_UI_API_URL": api_url(settings),
        "PREFECT_API_LOG_RETRYABLE_ERRORS": "true",
        "PREFECT_CLIENT_MAX_RETRIES": "6",
        # The local server has CSRF protection off: asking it for a token (422) costs every
        # new client a round trip.
        "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED": "false",
        # Every new client (one per flow-run process) would first ask /admin/version.
        "PREFECT_CLIENT_SERVER_VERSION_CHECK_ENABLED": "false",
    }
    return env
