"""The embedded alert sink: one structured log line per alert (logger ``orderpipe.alerts``)."""

from __future__ import annotations

import json
import logging

from orderpipe.connectors.base import Alert

log = logging.getLogger("orderpipe.alerts")


class LogAlerts:
    name = "log"

    def check(self) -> None:
        """Nothing to check: logging is always available."""

    def send(self, alert: Alert) -> None:
        fields = {
            "order_id": alert.order_id, "step": alert.step, "kind": alert.kind, "message": alert.message,
            "dedupe_key": alert.dedupe_key,
            "occurred_at": alert.occurred_at.isoformat() if alert.occurred_at else None,
        }
        log.error("ALERT %s", json.dumps(fields, ensure_ascii=False), extra={"alert": fields})
