"""SmtpEmail against an aiosmtpd stand-in (vendor-apis.md §8)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from orderpipe import vendor_attempts
from orderpipe.connectors.base import EmailResult
from orderpipe.email.ledger import already_sent
from orderpipe.email.smtp import SmtpEmail
from orderpipe.errors import NeedsAttention, PermanentError, TransientError
from orderpipe.settings import load_settings
from tests.conftest import free_port
from tests.contract.email_sample import PDF, VARIABLES, sample_message, sample_order
from tests.standins.smtp import SmtpStandIn

ORDER = "pi_3Pabc123"
EXPECTED_ID = f"<order-confirmation.{ORDER}@mg.example.fi>"


def configure(monkeypatch: pytest.MonkeyPatch, port: int, *, starttls: bool = False,
              username: str | None = None, password: str | None = None) -> None:
    monkeypatch.setenv("ORDERPIPE_EMAIL", "smtp")
    monkeypatch.setenv("SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("SMTP_PORT", str(port))
    monkeypatch.setenv("SMTP_STARTTLS", "true" if starttls else "false")
    for name, value in (("SMTP_USERNAME", username), ("SMTP_PASSWORD", password)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


@pytest.fixture
def smtp(monkeypatch: pytest.MonkeyPatch) -> Iterator[SmtpStandIn]:
    with SmtpStandIn() as standin:
        configure(monkeypatch, standin.port)
        yield standin


def send(conn: SmtpEmail) -> EmailResult:
    order = sample_order(ORDER)
    return conn.send(order, sample_message(order), language="fi", variables=VARIABLES)


def test_sends_the_rendered_message_with_a_deterministic_message_id(smtp: SmtpStandIn, engine: Engine) -> None:
    order = sample_order(ORDER)
    message = sample_message(order)
    result = SmtpEmail(load_settings(), engine).send(order, message, language="fi", variables=VARIABLES)

    [captured] = smtp.messages
    assert captured.mail_from == "orders@mg.example.fi" and captured.rcpt_tos == ["anna@example.fi"]
    got = captured.message
    assert got["Message-ID"] == EXPECTED_ID
    assert got["Subject"] == "Tilausvahvistus A-1001" and got["Content-Language"] == "fi"
    assert "JJFI64000000000001" in got.get_body(preferencelist=("plain",)).get_content()
    [pdf] = list(got.iter_attachments())
    assert pdf.get_filename() == "INV-2026-000001.pdf" and pdf.get_payload(decode=True) == PDF
    assert message["Message-ID"] == f"<random.{ORDER}@renderer.example>"  # the caller's copy is untouched
    assert result == EmailResult(message_id=EXPECTED_ID, language="fi", transport="smtp",
                                 location=f"127.0.0.1:{smtp.port}", created=True)


def test_a_rendered_deterministic_message_id_is_sent_unchanged(smtp: SmtpStandIn, engine: Engine) -> None:
    order = sample_order(ORDER)
    rendered_id = f"<order-confirmation.{ORDER}@pikkuna.example>"
    message = sample_message(order, message_id=rendered_id)
    result = SmtpEmail(load_settings(), engine).send(order, message, language="fi", variables=VARIABLES)
    assert smtp.messages[0].message["Message-ID"] == rendered_id == result.message_id


def test_repeat_after_a_crash_sends_nothing_twice(smtp: SmtpStandIn, engine: Engine) -> None:
    send(SmtpEmail(load_settings(), engine))
    again = send(SmtpEmail(load_settings(), engine))
    assert len(smtp.messages) == 1 and smtp.data_attempts == 1
    assert again.created is False and again.message_id == EXPECTED_ID


def test_451_is_transient_then_the_retry_is_accepted(smtp: SmtpStandIn, engine: Engine) -> None:
    smtp.fail_next("DATA", "451 4.3.0 Try again later")
    conn = SmtpEmail(load_settings(), engine)
    with pytest.raises(TransientError, match="451") as err:
        send(conn)
    assert ORDER in str(err.value) and already_sent(engine, ORDER) is None
    assert send(conn).created and len(smtp.messages) == 1


def test_550_recipient_is_permanent(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> None:
    with SmtpStandIn(reject_all="550 5.1.1 Mailbox unavailable") as standin:
        configure(monkeypatch, standin.port)
        with pytest.raises(PermanentError, match="550") as err:
            send(SmtpEmail(load_settings(), engine))
        assert standin.messages == []
    # the refusal without the address: the text goes into run logs, which Prefect cannot delete
    assert "550 5.1.1 Mailbox unavailable" in str(err.value) and "anna@example.fi" not in str(err.value)
    assert already_sent(engine, ORDER) is None


def test_a_session_cut_after_data_is_never_sent_again(smtp: SmtpStandIn, engine: Engine) -> None:
    """The relay took the message, then the connection dropped before its 250: SMTP has no
    lookup, so the step stops for a person (who is told what to check) instead of resending."""
    smtp.drop_after_next_data()
    conn = SmtpEmail(load_settings(), engine, timeout=2)
    with pytest.raises(NeedsAttention, match="after the message was sent") as err:
        send(conn)
    assert EXPECTED_ID in err.value.what_to_check and f"orderpipe resolve {ORDER} email" in err.value.what_to_check
    for _ in range(2):  # Prefect would not retry it; a replay or reconcile does not send either
        with pytest.raises(NeedsAttention, match="unknown outcome"):
            send(SmtpEmail(load_settings(), engine, timeout=2))
    assert len(smtp.messages) == 1 and smtp.data_attempts == 1

    vendor_attempts.resolve(engine, ORDER, "email")  # the person found it was not delivered after all
    assert send(conn).created and len(smtp.messages) == 2


def test_record_failing_after_the_relay_accepted_is_not_retried_into_a_duplicate(
    smtp: SmtpStandIn, engine: Engine
) -> None:
    with engine.begin() as c:  # the emails ledger refuses writes, as a full disk would
        c.exec_driver_sql("CREATE TRIGGER full BEFORE INSERT ON emails BEGIN SELECT RAISE(ABORT, 'disk is full'); END")
    with pytest.raises(NeedsAttention, match="disk is full"):
        send(SmtpEmail(load_settings(), engine))
    with engine.begin() as c:
        c.exec_driver_sql("DROP TRIGGER full")
    with pytest.raises(NeedsAttention, match="unknown outcome"):
        send(SmtpEmail(load_settings(), engine))
    assert len(smtp.messages) == 1


def test_450_recipient_is_transient(smtp: SmtpStandIn, engine: Engine) -> None:
    smtp.fail_next("RCPT", "450 4.2.1 Mailbox busy")
    with pytest.raises(TransientError, match="450"):
        send(SmtpEmail(load_settings(), engine))
    assert smtp.messages == []


def test_554_at_data_is_permanent(smtp: SmtpStandIn, engine: Engine) -> None:
    smtp.fail_next("DATA", "554 5.7.1 Message rejected as spam")
    with pytest.raises(PermanentError, match="554") as err:
        send(SmtpEmail(load_settings(), engine))
    assert not isinstance(err.value, NeedsAttention)  # the server answered: definitely not sent


def test_connection_refused_is_transient(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> None:
    configure(monkeypatch, free_port())
    with pytest.raises(TransientError, match="connection failed"):
        send(SmtpEmail(load_settings(), engine, timeout=2))
    with pytest.raises(TransientError, match="smtp check"):
        SmtpEmail(load_settings(), engine, timeout=2).check()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_auth_on_a_loopback_relay(monkeypatch: pytest.MonkeyPatch, engine: Engine) -> None:
    with SmtpStandIn(username="relay", password="s3cret") as standin:
        configure(monkeypatch, standin.port, username="relay", password="s3cret")
        send(SmtpEmail(load_settings(), engine))
        assert standin.logins == ["relay"] and len(standin.messages) == 1
        configure(monkeypatch, standin.port, username="relay", password="wrong-password")
        with pytest.raises(PermanentError, match="535") as err:
            SmtpEmail(load_settings(), engine).check()
        assert "wrong-password" not in str(err.value)


def _self_signed(tmp_path: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_pem = tmp_path / "cert.pem"
    key_pem = tmp_path / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert_pem, key_pem)
    client = ssl.create_default_context(cafile=str(cert_pem))
    return server, client


def test_starttls_then_auth(monkeypatch: pytest.MonkeyPatch, engine: Engine, tmp_path: Path) -> None:
    server_ctx, client_ctx = _self_signed(tmp_path)
    with SmtpStandIn(username="relay", password="s3cret", tls_context=server_ctx) as standin:
        configure(monkeypatch, standin.port, starttls=True, username="relay", password="s3cret")
        SmtpEmail(load_settings(), engine, tls_context=client_ctx).check()
        assert standin.messages == []
        send(SmtpEmail(load_settings(), engine, tls_context=client_ctx))
        assert standin.logins == ["relay", "relay"] and len(standin.messages) == 1
        # The system trust store does not know the test certificate: a configuration problem.
        monkeypatch.setenv("SMTP_STARTTLS", "true")
        with pytest.raises(PermanentError, match="certificate"):
            SmtpEmail(load_settings(), engine).check()


def test_check_sends_nothing(smtp: SmtpStandIn, engine: Engine) -> None:
    SmtpEmail(load_settings(), engine).check()
    assert smtp.messages == [] and smtp.data_attempts == 0
