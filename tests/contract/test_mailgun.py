"""MailgunEmail against the Mailgun stand-in (wire format: vendor-apis.md §6)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from orderpipe.email.ledger import already_sent
from orderpipe.email.mailgun import MailgunEmail
from orderpipe.errors import NeedsAttention, PermanentError, TransientError
from orderpipe.settings import load_settings
from tests.contract.email_sample import PDF, VARIABLES, sample_message, sample_order
from tests.contract.recorder import Recorder
from tests.standins.mailgun import MailgunStandIn, rate_limited, server_error
from tests.standins.wsgi_thread import Delay, Drop, Fault

KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
DOMAIN = "mg.example.fi"


@pytest.fixture
def mailgun() -> Iterator[MailgunStandIn]:
    with MailgunStandIn(api_key=KEY, domain=DOMAIN) as standin:
        yield standin


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, mailgun: MailgunStandIn) -> None:
    monkeypatch.setenv("ORDERPIPE_EMAIL", "mailgun")
    monkeypatch.setenv("MAILGUN_API_KEY", KEY)
    monkeypatch.setenv("MAILGUN_DOMAIN", DOMAIN)
    monkeypatch.setenv("MAILGUN_TEMPLATE", "order-confirmation")
    monkeypatch.setenv("MAILGUN_API_BASE", mailgun.url)


def connector(engine: Engine, **kw: object) -> MailgunEmail:
    return MailgunEmail(load_settings(), engine, **kw)  # type: ignore[arg-type]


def send(conn: MailgunEmail, order_id: str = "pi_3Pabc123", language: str = "fi"):  # noqa: ANN201
    order = sample_order(order_id)
    return conn.send(order, sample_message(order), language=language, variables=VARIABLES)


def test_send_posts_the_documented_multipart_request(env: None, engine: Engine, mailgun: MailgunStandIn) -> None:
    result = send(connector(engine))

    [req] = mailgun.requests
    assert (req.method, req.path) == ("POST", f"/v3/{DOMAIN}/messages")
    assert req.headers["Authorization"] == "Basic " + base64.b64encode(f"api:{KEY}".encode()).decode()
    assert req.headers["Content-Type"].startswith("multipart/form-data; boundary=")
    form = req.fields
    assert form["from"] == ["Painotalo Pikkuna <orders@mg.example.fi>"]
    assert form["to"] == ["anna@example.fi"]
    assert form["subject"] == ["Tilausvahvistus A-1001"]
    assert form["template"] == ["order-confirmation"]
    assert form["t:version"] == ["fi"]
    assert json.loads(form["t:variables"][0]) == {"language": "fi", **VARIABLES}
    assert form["v:order_id"] == ["pi_3Pabc123"]
    assert form["h:Message-Id"] == ["<order-confirmation.pi_3Pabc123@mg.example.fi>"]
    assert form["o:tag"] == ["order-confirmation"]
    assert req.files["attachment"] == [("INV-2026-000001.pdf", "application/pdf", PDF)]

    [message] = mailgun.messages
    assert result.created is True and result.transport == "mailgun" and result.language == "fi"
    assert result.message_id == message.id == result.location
    assert already_sent(engine, "pi_3Pabc123") == result.model_copy(update={"created": False})


def test_the_rendered_deterministic_message_id_is_kept(env: None, engine: Engine, mailgun: MailgunStandIn) -> None:
    order = sample_order()
    rendered_id = "<order-confirmation.pi_3Pabc123@pikkuna.example>"
    connector(engine).send(order, sample_message(order, message_id=rendered_id), language="fi", variables=VARIABLES)
    assert mailgun.messages[0].one("h:Message-Id") == rendered_id


def test_repeat_after_a_crash_sends_nothing_twice(env: None, engine: Engine, mailgun: MailgunStandIn) -> None:
    first = send(connector(engine))
    again = send(connector(engine))  # a new process: new connector, same database
    assert len(mailgun.messages) == 1 and len(mailgun.requests) == 1
    assert again.created is False and again.message_id == first.message_id


def test_429_is_waited_out_as_the_retry_after_header_says(env: None, engine: Engine,
                                                          mailgun: MailgunStandIn) -> None:
    mailgun.inject(rate_limited(retry_after=2))
    sleeps = Recorder()
    result = send(connector(engine, sleep=sleeps))
    assert sleeps == [2.0]
    assert [r.status for r in mailgun.requests] == [429, 200]
    assert result.created and len(mailgun.messages) == 1


def test_a_long_retry_after_goes_back_to_the_caller(env: None, engine: Engine, mailgun: MailgunStandIn) -> None:
    mailgun.inject(rate_limited(retry_after=120))
    conn = connector(engine, sleep=Recorder())
    with pytest.raises(TransientError) as err:
        send(conn)
    assert err.value.retry_after == 120.0
    assert "pi_3Pabc123" in str(err.value) and already_sent(engine, "pi_3Pabc123") is None
    assert send(conn).created and len(mailgun.messages) == 1


def test_5xx_then_success(env: None, engine: Engine, mailgun: MailgunStandIn) -> None:
    mailgun.inject(server_error(503))
    conn = connector(engine)
    with pytest.raises(TransientError, match="HTTP 503"):
        send(conn)
    assert send(conn).created and len(mailgun.messages) == 1


@pytest.mark.parametrize("fault", [Delay(0.6), Drop(), Fault(status=504, body={"message": "Gateway Timeout"})],
                         ids=["accepted-then-timed-out", "accepted-then-connection-dropped", "gateway-timeout"])
def test_a_lost_answer_is_never_sent_again(env: None, engine: Engine, mailgun: MailgunStandIn,
                                           fault: Delay | Drop | Fault) -> None:
    """Mailgun has no server-side dedupe and the vendor doc no lookup: an answer lost after
    the POST is never repeated. The step needs a person, told what to look for."""
    mailgun.inject(fault)
    with pytest.raises(NeedsAttention) as err:
        send(connector(engine, timeout=0.2))
    assert "order_id=pi_3Pabc123" in err.value.what_to_check
    assert "<order-confirmation.pi_3Pabc123@mg.example.fi>" in err.value.what_to_check
    mailgun.wait_idle()
    with pytest.raises(NeedsAttention, match="unknown outcome"):
        send(connector(engine))  # the replay
    assert len(mailgun.calls("POST")) == 1 and len(mailgun.messages) <= 1
    assert already_sent(engine, "pi_3Pabc123") is None


def test_a_2xx_without_an_id_needs_attention(env: None, engine: Engine, mailgun: MailgunStandIn) -> None:
    mailgun.inject(Fault(status=200, body={"message": "Queued. Thank you."}))
    with pytest.raises(NeedsAttention, match="without a message id"):
        send(connector(engine))
    with pytest.raises(NeedsAttention, match="unknown outcome"):
        send(connector(engine))
    assert len(mailgun.calls("POST")) == 1


def test_missing_template_version_falls_back_to_the_active_version(env: None, engine: Engine,
                                                                   mailgun: MailgunStandIn) -> None:
    result = send(connector(engine), language="de")
    assert [r.status for r in mailgun.requests] == [400, 200]
    [message] = mailgun.messages
    assert message.one("t:version") is None
    assert json.loads(message.one("t:variables") or "{}")["language"] == "de"
    assert result.language == "de"


def test_wrong_key_is_permanent_and_the_key_is_not_in_the_error(env: None, engine: Engine,
                                                                monkeypatch: pytest.MonkeyPatch,
                                                                mailgun: MailgunStandIn) -> None:
    monkeypatch.setenv("MAILGUN_API_KEY", "key-wrong-secret")
    with pytest.raises(PermanentError) as err:
        send(connector(engine))
    assert "HTTP 401" in str(err.value) and "pi_3Pabc123" in str(err.value)
    assert "key-wrong-secret" not in str(err.value)
    assert mailgun.messages == [] and already_sent(engine, "pi_3Pabc123") is None


def test_check_reads_the_domain_and_sends_nothing(env: None, engine: Engine, mailgun: MailgunStandIn,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    connector(engine).check()
    [req] = mailgun.requests
    assert (req.method, req.path) == ("GET", f"/v3/domains/{DOMAIN}")
    assert req.headers["Authorization"].startswith("Basic ")
    monkeypatch.setenv("MAILGUN_DOMAIN", "mg.wrong-region.fi")
    with pytest.raises(PermanentError, match="HTTP 404"):
        connector(engine).check()
    assert mailgun.messages == []
