"""TelegramAlerts against the Bot API stand-in (vendor-apis.md §9)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from orderpipe.alerting.telegram import TelegramAlerts
from orderpipe.connectors.base import Alert
from orderpipe.errors import PermanentError, TransientError
from orderpipe.settings import load_settings
from tests.contract.recorder import Recorder
from tests.standins.telegram import TelegramStandIn, bad_gateway, blocked, flood_control
from tests.standins.wsgi_thread import Delay, Respond

TOKEN = "123456789:AAE-secret-token-value"
CHAT = -1001234567890
ALERT = Alert(order_id="pi_3Pabc123", step="shipment", kind="step_failed",
              message="PostNord label failed: status FAIL", dedupe_key="step_failed:pi_3Pabc123:shipment")
TEXT = "[orderpipe] step_failed order pi_3Pabc123 step shipment: PostNord label failed: status FAIL"


@pytest.fixture
def telegram(monkeypatch: pytest.MonkeyPatch) -> Iterator[TelegramStandIn]:
    with TelegramStandIn(token=TOKEN, chats={CHAT, -1009999}, migrated={-4242: -1009999}) as standin:
        monkeypatch.setenv("ORDERPIPE_ALERTS", "telegram")
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("TELEGRAM_CHAT_ID", str(CHAT))
        monkeypatch.setenv("TELEGRAM_API_BASE", standin.url)
        yield standin


def sink(**kw: object) -> TelegramAlerts:
    return TelegramAlerts(load_settings(), **kw)  # type: ignore[arg-type]


def test_send_posts_plain_text_json_to_send_message(telegram: TelegramStandIn) -> None:
    throttled = Recorder()
    sink(throttle=throttled).send(ALERT)
    [req] = telegram.requests
    assert (req.method, req.path) == ("POST", f"/bot{TOKEN}/sendMessage")
    assert req.headers["Content-Type"] == "application/json"
    assert req.json() == {"chat_id": CHAT, "text": TEXT, "disable_notification": False}
    assert throttled == ["telegram-api"]
    assert [m["text"] for m in telegram.messages] == [TEXT]


def test_flood_control_is_waited_out_from_the_body(telegram: TelegramStandIn) -> None:
    telegram.inject(flood_control(retry_after=2))
    sleeps, throttled = Recorder(), Recorder()
    sink(sleep=sleeps, throttle=throttled).send(ALERT)
    assert sleeps == [2.0] and throttled == ["telegram-api", "telegram-api"]
    assert [r.status for r in telegram.requests] == [429, 200] and len(telegram.messages) == 1


def test_long_flood_wait_goes_to_the_caller_without_the_token(telegram: TelegramStandIn) -> None:
    telegram.inject(flood_control(retry_after=35))
    with pytest.raises(TransientError) as err:
        sink(sleep=Recorder()).send(ALERT)
    assert err.value.retry_after == 35.0 and "retry after 35" in str(err.value)
    assert TOKEN not in str(err.value) and telegram.messages == []


@pytest.mark.parametrize("fault, text", [
    (Respond(400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}), "chat not found"),
    (blocked(), "bot was blocked"),
    (Respond(200, {"ok": False, "error_code": 400, "description": "Bad Request: can't parse entities"}),
     "parse entities"),
])
def test_ok_false_is_permanent(telegram: TelegramStandIn, fault: Respond, text: str) -> None:
    telegram.inject(fault)
    with pytest.raises(PermanentError, match=text) as err:
        sink().send(ALERT)
    assert TOKEN not in str(err.value) and "/bot<token>/sendMessage" in str(err.value)
    assert err.value.__suppress_context__  # httpx's own exceptions (which carry the URL) are not chained


def test_unknown_chat_from_the_real_logic_is_permanent(telegram: TelegramStandIn,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_CHAT_ID", "-100111")
    with pytest.raises(PermanentError, match="chat not found"):
        sink().send(ALERT)


def test_5xx_then_success(telegram: TelegramStandIn) -> None:
    telegram.inject(bad_gateway())
    alerts = sink()
    with pytest.raises(TransientError, match="HTTP 502"):
        alerts.send(ALERT)
    alerts.send(ALERT)
    assert len(telegram.messages) == 1


def test_timeout_then_success(telegram: TelegramStandIn) -> None:
    """No idempotency at Telegram: a lost answer means a second post (acceptable for alerts)."""
    telegram.inject(Delay(0.6))
    with pytest.raises(TransientError, match="timed out") as err:
        sink(timeout=0.2).send(ALERT)
    assert TOKEN not in str(err.value)
    telegram.wait_idle()
    sink().send(ALERT)
    assert [m["text"] for m in telegram.messages] == [TEXT, TEXT]


def test_migrated_group_is_followed_once(telegram: TelegramStandIn, monkeypatch: pytest.MonkeyPatch,
                                         caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("TELEGRAM_CHAT_ID", "-4242")
    sink().send(ALERT)
    assert [m["chat_id"] for m in telegram.messages] == [-1009999]
    assert "TELEGRAM_CHAT_ID=-1009999" in caplog.text


def test_check_calls_get_me_and_hides_the_token(telegram: TelegramStandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    sink().check()
    assert [(r.method, r.path) for r in telegram.requests] == [("POST", f"/bot{TOKEN}/getMe")]
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "999:wrong-secret")
    with pytest.raises(PermanentError, match="Unauthorized") as err:
        sink().check()
    assert "wrong-secret" not in str(err.value)
    assert telegram.messages == []


def test_httpx_request_log_does_not_show_the_token(telegram: TelegramStandIn,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="httpx"):
        sink().send(ALERT)
    lines = [r.getMessage() for r in caplog.records if r.name == "httpx"]
    assert lines and all(TOKEN not in line for line in lines)
