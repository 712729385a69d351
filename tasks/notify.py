from __future__ import annotations

from prefect import task

from orderpipe.alerting import alerts
from orderpipe.bootstrap import process_services
from orderpipe.connectors.base import Alert
from tasks.step_policy import RETRY, run_name


@task(name="ops_alert", task_run_name=run_name("ops_alert"), **RETRY)  # type: ignore[call-overload]
def ops_alert(alert: Alert) -> bool:
    """Record the alert once (dedupe key) and deliver it to the configured sink."""
    svc = process_services()
    return alerts.raise_alert(svc.engine, svc.alerts, alert)


@task(name="status_callback", task_run_name=run_name("status_callback"), **RETRY)  # type: ignore[call-overload]
def status_callback(payload: dict[str, object]) -> None:
    """Tell the shop's API the order's status (signed, idempotent by order + status)."""
    svc = process_services()
    if svc.status_callback is not None:
        svc.status_callback.notify(payload)
