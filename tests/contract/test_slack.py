"""SlackAlerts against the incoming-webhook stand-in (vendor-apis.md §10)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from orderpipe.alerting.slack import SlackAlerts
from orderpipe.connectors.base import Alert
from orderpipe.errors import PermanentError, TransientError
from orderpipe.settings import load_settings
from tests.contract.recorder import Recorder
from tests.standins.slack import SlackStandIn, archived, rate_limited, rollup_error, web_api_style_failure
from tests.standins.wsgi_thread import Delay

SECRET = "XXsecretXXwebhookXXpartXX"
PATH = f"/services/T0000/B0000/{SECRET}"
ALERT = Alert(order_id="pi_3Pabc123", step="invoice", kind="step_failed",
              message="Netvisor invoice FAILED (INVALID_DATA)", dedupe_key="step_failed:pi_3Pabc123:invoice")
TEXT = "[orderpipe] step_failed order pi_3Pabc123 step invoice: Netvisor invoice FAILED (INVALID_DATA)"


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackStandIn]:
    with SlackStandIn(path=PATH) as standin:
        monkeypatch.setenv("ORDERPIPE_ALERTS", "slack")
        monkeypatch.setenv("SLACK_WEBHOOK_URL", standin.webhook_url)
        yield standin


def sink(**kw: object) -> SlackAlerts:
    return SlackAlerts(load_settings(), **kw)  # type: ignore[arg-type]


def test_send_posts_json_text_to_the_webhook(slack: SlackStandIn) -> None:
    sink().send(ALERT)
    [req] = slack.requests
    assert (req.method, req.path, req.status) == ("POST", PATH, 200)
    assert req.headers["Content-Type"] == "application/json"
    assert req.json() == {"text": TEXT}
    assert slack.messages == [{"text": TEXT}]


def test_429_is_waited_out(slack: SlackStandIn) -> None:
    slack.inject(rate_limited(retry_after=1))
    sleeps = Recorder()
    sink(sleep=sleeps).send(ALERT)
    assert sleeps == [1.0] and [r.status for r in slack.requests] == [429, 200] and len(slack.messages) == 1


def test_5xx_then_success(slack: SlackStandIn) -> None:
    slack.inject(rollup_error())
    alerts = sink()
    with pytest.raises(TransientError, match="rollup_error") as err:
        alerts.send(ALERT)
    assert SECRET not in str(err.value)
    alerts.send(ALERT)
    assert len(slack.messages) == 1


def test_timeout_then_success(slack: SlackStandIn) -> None:
    slack.inject(Delay(0.6))
    with pytest.raises(TransientError, match="timed out") as err:
        sink(timeout=0.2).send(ALERT)
    assert SECRET not in str(err.value) and "hooks" not in str(err.value)
    slack.wait_idle()
    sink().send(ALERT)
    assert len(slack.messages) == 2  # no idempotency key at Slack: a lost answer means a second post


def test_text_error_codes_are_permanent_and_never_show_the_url(slack: SlackStandIn,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    slack.inject(archived())
    with pytest.raises(PermanentError, match="HTTP 410: channel_is_archived") as err:
        sink().send(ALERT)
    assert SECRET not in str(err.value)
    monkeypatch.setenv("SLACK_WEBHOOK_URL", slack.url + "/services/T0000/B0000/revoked")
    with pytest.raises(PermanentError, match="HTTP 404: no_service") as err:
        sink().send(ALERT)
    assert "revoked" not in str(err.value)
    assert slack.messages == []


def test_ok_false_json_in_a_200_is_permanent(slack: SlackStandIn) -> None:
    slack.inject(web_api_style_failure())
    with pytest.raises(PermanentError, match="channel_not_found"):
        sink().send(ALERT)


def test_check_validates_the_url_shape_only(slack: SlackStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    sink().check()
    assert slack.requests == []  # an incoming webhook has no side-effect-free call
    monkeypatch.setenv("SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T0/B0/abc")
    sink().check()
    for bad in ("http://hooks.slack.com/services/T0/B0/abc", "https://hooks.slack.com/workflows/abc",
                "not a url"):
        monkeypatch.setenv("SLACK_WEBHOOK_URL", bad)
        with pytest.raises(PermanentError, match="SLACK_WEBHOOK_URL") as err:
            sink().check()
        assert "abc" not in str(err.value)


def test_httpx_request_log_does_not_show_the_webhook_secret(slack: SlackStandIn,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="httpx"):
        sink().send(ALERT)
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert lines and all(SECRET not in line for line in lines)
