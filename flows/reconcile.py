"""reconcile: the scheduled backstop for missed webhooks (orders, refunds, disputes), unstarted and failed orders."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from orderpipe.bootstrap import process_services
from orderpipe.orders.reconciliation import reconcile_now


@flow(name="reconcile", flow_run_name="reconcile-{since_hours}h")
def reconcile(since_hours: float = 24.0) -> dict[str, Any]:
    report = reconcile_now(process_services(), since=timedelta(hours=since_hours))
    logger = get_run_logger()
    for line in report.lines():
        logger.info(line)
    create_markdown_artifact(key="reconcile", markdown="```\n" + "\n".join(report.lines()) + "\n```\n",
                             description="last reconciliation")
    return {"events_recorded": report.events_recorded, "orders_recorded": report.orders_recorded,
            "disputes_recorded": report.disputes_recorded, "orders_started": report.orders_started,
            "refunds_started": report.refunds_started, "runs_retried": report.runs_retried}
