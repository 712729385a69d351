"""gunicorn entry point: `gunicorn 'webhook.wsgi:application()'` builds the app from Settings.

The receiver needs the webhook secrets, the database and the Prefect URL (for /healthz)
only: it builds no vendor connector, so a missing vendor setting never stops webhooks."""

from __future__ import annotations

import httpx
from flask import Flask

from orderpipe.db import get_engine
from orderpipe.orders.wakeup import wake_after_commit
from orderpipe.prefect_env import api_url
from orderpipe.settings import load_settings
from webhook.app import create_app


def application() -> Flask:
    settings = load_settings(connectors=False)
    secrets = settings.require_webhook_secret()
    engine = get_engine(settings.db_url)
    health = api_url(settings) + "/health"

    def prefect_ok() -> bool:
        try:
            return httpx.get(health, timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    data_dir = settings.data_dir
    return create_app(engine=engine, secrets=secrets, prefect_probe=prefect_ok,
                      on_accepted=lambda _order_id: wake_after_commit(engine, data_dir))
