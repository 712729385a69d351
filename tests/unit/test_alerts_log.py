"""LogAlerts: the embedded alert sink writes one structured line."""

from __future__ import annotations

import json
import logging

import pytest

from orderpipe.alerting.log import LogAlerts
from orderpipe.alerting.text import alert_text
from orderpipe.connectors.base import Alert

ALERT = Alert(order_id="pi_1", step="email", kind="step_failed", message="SMTP 550 mailbox unavailable",
              dedupe_key="step_failed:pi_1:email")


def test_one_structured_line_per_alert(caplog: pytest.LogCaptureFixture) -> None:
    sink = LogAlerts()
    sink.check()
    with caplog.at_level(logging.INFO, logger="orderpipe.alerts"):
        sink.send(ALERT)
    [record] = [r for r in caplog.records if r.name == "orderpipe.alerts"]
    fields = json.loads(record.getMessage().removeprefix("ALERT "))
    assert fields["order_id"] == "pi_1" and fields["step"] == "email" and fields["kind"] == "step_failed"
    assert fields["message"] == "SMTP 550 mailbox unavailable"
    assert record.alert == fields  # type: ignore[attr-defined]


def test_chat_text_names_order_step_and_reason_and_respects_the_limit() -> None:
    assert alert_text(ALERT) == "[orderpipe] step_failed order pi_1 step email: SMTP 550 mailbox unavailable"
    no_order = Alert(order_id=None, step=None, kind="run_crashed", message="x" * 100, dedupe_key="k")
    short = alert_text(no_order, 20)
    assert len(short) == 20 and short.startswith("[orderpipe] run_cra") and short.endswith("…")
