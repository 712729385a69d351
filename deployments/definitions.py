"""orderpipe's deployments and the work pool their runs go through.

Every worker applies them at start-up (an upsert by name), so the deployments, their
schedule and the pool are always in place, whichever worker came up first.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any
from uuid import UUID

from prefect import Flow
from prefect.deployments.runner import EntrypointType

from flows.process_order import process_order
from flows.process_refund import process_refund
from flows.reconcile import reconcile
from orderpipe.settings import Settings

# The pool's type names orderpipe's own executor (deployments/worker.py): Prefect's stock
# `process` workers must not take these runs, they would start an interpreter per run.
POOL_TYPE = "orderpipe"
FLOWS: dict[str, Flow[..., Any]] = {process_order.name: process_order, process_refund.name: process_refund,
                                     reconcile.name: reconcile}
log = logging.getLogger("orderpipe.deployments")


def deployments(settings: Settings) -> list[Any]:
    return [
        process_order.to_deployment(
            name="orderpipe", tags=["orderpipe"], entrypoint_type=EntrypointType.MODULE_PATH,
            description="Fulfil one paid Stripe order (one run per PaymentIntent).",
        ),
        process_refund.to_deployment(
            name="orderpipe", tags=["orderpipe"], entrypoint_type=EntrypointType.MODULE_PATH,
            description="Credit one Stripe refund or lost dispute (one run per re_/du_ id).",
        ),
        reconcile.to_deployment(
            name="orderpipe", tags=["orderpipe"], entrypoint_type=EntrypointType.MODULE_PATH,
            interval=timedelta(minutes=settings.orderpipe_reconcile_minutes), parameters={"since_hours": 24.0},
            description="Catch missed webhooks, start pending orders, retry failed runs.",
        ),
    ]


def ensure_pool(client: Any, name: str) -> None:
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    try:
        pool = client.read_work_pool(name)
        if pool.type != POOL_TYPE:
            log.warning("work pool %s has type %s, not %s: stock workers of that type may take orderpipe's runs",
                        name, pool.type, POOL_TYPE)
        return
    except ObjectNotFound:
        pass
    try:
        client.create_work_pool(WorkPoolCreate(
            name=name, type=POOL_TYPE,
            description="orderpipe's flow runs; executed by `orderpipe worker` (a fork per run)",
        ))
    except ObjectAlreadyExists:  # another worker created it a moment ago
        pass


def apply_all(settings: Settings, client: Any) -> dict[UUID, Flow[..., Any]]:
    """Pool + deployments in place; returns deployment id -> the (already imported) flow."""
    ensure_pool(client, settings.orderpipe_work_pool)
    out: dict[UUID, Flow[..., Any]] = {}
    for dep in deployments(settings):
        dep_id = dep.apply(work_pool_name=settings.orderpipe_work_pool)
        out[dep_id] = FLOWS[dep.flow_name]
    return out
