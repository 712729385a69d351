"""How an ops alert reads in a chat (Telegram, Slack): one plain-text line."""

from __future__ import annotations

from orderpipe.connectors.base import Alert


def alert_text(alert: Alert, limit: int | None = None) -> str:
    """``[orderpipe] <kind> order <id> step <step>: <message>``, cut to ``limit`` characters."""
    head = f"[orderpipe] {alert.kind}"
    if alert.order_id:
        head += f" order {alert.order_id}"
    if alert.step:
        head += f" step {alert.step}"
    text = f"{head}: {alert.message}"
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text
