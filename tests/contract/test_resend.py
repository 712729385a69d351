"""ResendEmail against the Resend stand-in (wire format: vendor-apis.md §7)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import Engine, update

from orderpipe import vendor_attempts
from orderpipe.connectors.base import EmailResult
from orderpipe.email.ledger import already_sent
from orderpipe.email.resend import ResendEmail
from orderpipe.errors import NeedsAttention, PermanentError, TransientError
from orderpipe.settings import load_settings
from orderpipe.tables import VendorAttempt, utcnow
from tests.contract.email_sample import PDF, VARIABLES, sample_message, sample_order
from tests.contract.recorder import Recorder
from tests.standins.resend import ResendStandIn, quota_exceeded, rate_limited, server_error
from tests.standins.wsgi_thread import Delay, Drop

KEY = "re_123456789_secret"
ORDER = "pi_3Pabc123"


@pytest.fixture
def resend() -> Iterator[ResendStandIn]:
    with ResendStandIn(api_key=KEY) as standin:
        yield standin


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, resend: ResendStandIn) -> None:
    monkeypatch.setenv("ORDERPIPE_EMAIL", "resend")
    monkeypatch.setenv("RESEND_API_KEY", KEY)
    monkeypatch.setenv("RESEND_API_BASE", resend.url)


def connector(engine: Engine, **kw: object) -> ResendEmail:
    return ResendEmail(load_settings(), engine, **kw)  # type: ignore[arg-type]


def send(conn: ResendEmail, *, subject: str = "Tilausvahvistus A-1001") -> EmailResult:
    order = sample_order(ORDER)
    return conn.send(order, sample_message(order, subject=subject), language="fi", variables=VARIABLES)


def test_send_posts_rendered_html_text_and_pdf_with_an_idempotency_key(env: None, engine: Engine,
                                                                        resend: ResendStandIn) -> None:
    throttled = Recorder()
    result = send(connector(engine, throttle=throttled))

    [req] = resend.requests
    assert (req.method, req.path) == ("POST", "/emails")
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    assert req.headers["Idempotency-Key"] == f"order-confirmation/{ORDER}"
    assert req.headers["Content-Type"] == "application/json"
    body = req.json()
    assert body["from"] == "Painotalo Pikkuna <orders@mg.example.fi>"
    assert body["to"] == ["anna@example.fi"]
    assert body["subject"] == "Tilausvahvistus A-1001"
    assert "JJFI64000000000001" in body["text"] and "<b>JJFI64000000000001</b>" in body["html"]
    [attachment] = body["attachments"]
    assert attachment["filename"] == "INV-2026-000001.pdf"
    assert base64.b64decode(attachment["content"]) == PDF
    assert body["headers"] == {"X-Orderpipe-Order": ORDER}
    assert {"name": "language", "value": "fi"} in body["tags"]
    assert throttled == ["resend-api"]

    [email_id] = resend.emails
    assert result == EmailResult(message_id=email_id, language="fi", transport="resend", location=email_id,
                                 created=True)
    assert already_sent(engine, ORDER) is not None


def test_repeat_after_a_crash_sends_nothing_twice(env: None, engine: Engine, resend: ResendStandIn) -> None:
    first = send(connector(engine))
    again = send(connector(engine))
    assert len(resend.emails) == 1 and len(resend.requests) == 1
    assert again.created is False and again.message_id == first.message_id


def test_lost_answer_then_retry_is_replayed_not_resent(env: None, engine: Engine, resend: ResendStandIn) -> None:
    """Accepted, answer lost (client timeout), nothing recorded: the idempotency key closes the window."""
    resend.inject(Delay(0.6))
    with pytest.raises(TransientError, match="timed out"):
        send(connector(engine, timeout=0.2))
    resend.wait_idle()
    assert len(resend.emails) == 1 and already_sent(engine, ORDER) is None
    result = send(connector(engine))
    [email_id] = resend.emails
    assert result.message_id == email_id and len(resend.emails) == 1


def test_dropped_connection_then_retry_is_replayed_not_resent(env: None, engine: Engine,
                                                              resend: ResendStandIn) -> None:
    resend.inject(Drop())
    with pytest.raises(TransientError, match="answer was lost"):
        send(connector(engine))
    result = send(connector(engine))
    [email_id] = resend.emails
    assert result.message_id == email_id and len(resend.emails) == 1
    assert vendor_attempts.pending(engine, ORDER, "email") is None


def test_an_unknown_outcome_older_than_the_key_is_not_repeated(env: None, engine: Engine,
                                                               resend: ResendStandIn) -> None:
    """Resend keeps idempotency keys 24 h: past that, a repeat could send twice."""
    resend.inject(Delay(0.6))
    with pytest.raises(TransientError):
        send(connector(engine, timeout=0.2))
    resend.wait_idle()
    with engine.begin() as c:
        c.execute(update(VendorAttempt).values(started_at=utcnow() - timedelta(hours=30)))
    with pytest.raises(NeedsAttention, match="idempotency key may have expired") as err:
        send(connector(engine))
    assert f"order-confirmation/{ORDER}" in err.value.what_to_check
    assert len(resend.requests) == 1


def test_lost_answer_then_a_different_payload_counts_as_sent(env: None, engine: Engine,
                                                             resend: ResendStandIn) -> None:
    resend.inject(Delay(0.6))
    with pytest.raises(TransientError):
        send(connector(engine, timeout=0.2))
    resend.wait_idle()
    result = send(connector(engine), subject="Tilausvahvistus A-1001 (re-rendered)")
    assert resend.requests[-1].status == 409
    assert len(resend.emails) == 1
    assert result.created is False and result.message_id == f"order-confirmation/{ORDER}"
    assert already_sent(engine, ORDER) is not None


def test_429_is_waited_out_and_throttle_runs_before_each_request(env: None, engine: Engine,
                                                                 resend: ResendStandIn) -> None:
    resend.inject(rate_limited(retry_after=1))
    sleeps, throttled = Recorder(), Recorder()
    result = send(connector(engine, sleep=sleeps, throttle=throttled))
    assert sleeps == [1.0] and throttled == ["resend-api", "resend-api"]
    assert [r.status for r in resend.requests] == [429, 200]
    assert result.created and len(resend.emails) == 1


def test_quota_exceeded_is_permanent(env: None, engine: Engine, resend: ResendStandIn) -> None:
    resend.inject(quota_exceeded())
    with pytest.raises(PermanentError, match="daily_quota_exceeded"):
        send(connector(engine, sleep=Recorder()))
    assert resend.emails == {}


def test_5xx_then_success(env: None, engine: Engine, resend: ResendStandIn) -> None:
    resend.inject(server_error())
    conn = connector(engine)
    with pytest.raises(TransientError, match="HTTP 500"):
        send(conn)
    assert send(conn).created and len(resend.emails) == 1


def test_invalid_key_is_permanent_without_the_key(env: None, engine: Engine, resend: ResendStandIn,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESEND_API_KEY", "re_wrong_secret")
    with pytest.raises(PermanentError) as err:
        send(connector(engine))
    assert "HTTP 403" in str(err.value) and ORDER in str(err.value) and "re_wrong_secret" not in str(err.value)


def test_check_is_a_read_only_get(env: None, engine: Engine, resend: ResendStandIn,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    throttled = Recorder()
    connector(engine, throttle=throttled).check()
    assert [(r.method, r.path) for r in resend.requests] == [("GET", "/domains")]
    assert throttled == ["resend-api"]
    resend.restricted = True  # a sending-only key cannot list domains, but it is a valid key
    connector(engine).check()
    monkeypatch.setenv("RESEND_API_KEY", "re_wrong")
    with pytest.raises(PermanentError, match="HTTP 403"):
        connector(engine).check()
    assert resend.emails == {}
