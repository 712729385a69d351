"""Confirmation email over SMTP (any relay: Mailgun/Resend SMTP, a company server).

Per order, at most one SMTP session that delivers the rendered message as it is: connect
(implicit TLS on port 465), EHLO, STARTTLS when ``SMTP_STARTTLS`` is true, AUTH when
``SMTP_USERNAME`` is set, MAIL/RCPT/DATA, QUIT.

Idempotency: the ``emails`` ledger (``email_ledger``). SMTP has none of its own and no
lookup: a drop after the final ``.`` of DATA and before ``250`` leaves the outcome unknown.
Such a send is never repeated: the attempt marker stays and the step raises
``NeedsAttention`` (check the relay's log / the inbox for the deterministic
``Message-ID: <order-confirmation.<order id>@<sender domain>>``). A failure before the
final ``.`` (connect, EHLO, AUTH, MAIL, RCPT, a DATA refused with 4xx/5xx) is definite:
nothing was delivered and the usual transient/permanent rules apply.

Reply codes (RFC 5321): 4xx and connection failures -> TransientError; 5xx -> PermanentError.
Credentials are only sent over TLS, except to a loopback relay (local test sinks).
"""

from __future__ import annotations

import copy
import smtplib
import socket
import ssl
from email.message import EmailMessage
from typing import NoReturn

from sqlalchemy import Engine

from orderpipe import vendor_attempts
from orderpipe.connectors.base import EmailResult
from orderpipe.email.ledger import (
    STEP,
    already_sent,
    confirmation_message_id,
    domain_of,
    idempotency_key,
    is_confirmation_message_id,
    lost,
    record_or_stop,
    resolve_hint,
    unknown_outcome,
)
from orderpipe.errors import PermanentError, StepError, TransientError
from orderpipe.order import Order
from orderpipe.settings import Settings

IMPLICIT_TLS_PORT = 465
LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class SmtpEmail:
    name = "smtp"

    def __init__(self, settings: Settings, engine: Engine, *, timeout: float = 30.0,
                 tls_context: ssl.SSLContext | None = None) -> None:
        if not settings.smtp_host:
            raise PermanentError("smtp email needs SMTP_HOST")
        self._engine = engine
        self._host = settings.smtp_host
        self._port = settings.smtp_port
        self._username = settings.smtp_username
        self._password = settings.smtp_password or ""
        self._starttls = settings.smtp_starttls
        self._timeout = timeout
        self._tls_context = tls_context  # None: the system's default verification

    # -- EmailConnector --------------------------------------------------------------
    def check(self) -> None:
        """Connect, EHLO, STARTTLS/AUTH as configured, QUIT: nothing is sent."""
        try:
            with self._session():
                pass
        except StepError as exc:
            raise type(exc)(f"smtp check: {exc}") from None

    def send(self, order: Order, message: EmailMessage, *, language: str, variables: dict[str, str]) -> EmailResult:
        done = already_sent(self._engine, order.order_id)
        if done is not None:
            return done
        outgoing = self._prepared(order.order_id, message)
        message_id = str(outgoing["Message-ID"])
        where = f"order {order.order_id}, step email: smtp {self._host}:{self._port}"
        check = (f"the mail relay {self._host}'s log (or the customer's inbox) for Message-ID {message_id}; "
                 + resolve_hint(order.order_id))
        unknown_outcome(self._engine, order.order_id, "SMTP", check)
        vendor_attempts.begin(self._engine, order.order_id, STEP, self.name, message_id)
        session = self._session()
        try:
            with session as smtp:
                refused = smtp.send_message(outgoing)
        except Exception as exc:
            if session.payload_sent and not _server_answered(session.original):
                cut = TransientError(f"{where}: the session ended after the message was sent, before the "
                                     f"server's reply ({exc})")
                raise lost(self._engine, order.order_id, "SMTP", cut, check) from None
            vendor_attempts.abandon(self._engine, order.order_id, STEP)  # the server refused or never got it
            self._raise_definite(where, exc)
        result = record_or_stop(self._engine, order.order_id, EmailResult(
            message_id=message_id, language=language, transport=self.name,
            location=f"{self._host}:{self._port}", created=True), check)
        if refused:
            # Accepted for some recipients: recorded (a retry would duplicate theirs), but a
            # person must look at the others.
            detail = "; ".join(_refusal(addr, code, msg) for addr, (code, msg) in refused.items())
            raise PermanentError(f"{where}: sent, but some recipients were refused ({detail})")
        return result

    @staticmethod
    def _raise_definite(where: str, exc: BaseException) -> NoReturn:
        try:
            raise exc
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _msg in exc.recipients.values()]
            detail = "; ".join(_refusal(addr, code, msg) for addr, (code, msg) in exc.recipients.items())
            if codes and all(400 <= code < 500 for code in codes):
                raise TransientError(f"{where}: recipients deferred ({detail})") from None
            raise PermanentError(f"{where}: recipients refused ({detail})") from None
        except StepError as exc:
            raise type(exc)(f"{where}: {exc}") from None

    # -- internals ----------------------------------------------------------------------
    def _prepared(self, order_id: str, message: EmailMessage) -> EmailMessage:
        """The message with the order's deterministic Message-ID (a copy if it had another).

        ``email_render`` already sets it; a message from elsewhere gets one here."""
        keep_id = is_confirmation_message_id(order_id, message.get("Message-ID"))
        needs_resend_key = self._host.lower().endswith("resend.com") and "Resend-Idempotency-Key" not in message
        if keep_id and not needs_resend_key:
            return message
        outgoing = copy.deepcopy(message)  # the caller's message stays as it was
        if not keep_id:
            del outgoing["Message-ID"]
            outgoing["Message-ID"] = confirmation_message_id(order_id, domain_of(str(message.get("From") or "")))
        if needs_resend_key:
            outgoing["Resend-Idempotency-Key"] = idempotency_key(order_id)
        return outgoing

    def _session(self) -> _Session:
        return _Session(self)


class _Session:
    """An authenticated SMTP session with every failure classified."""

    def __init__(self, owner: SmtpEmail) -> None:
        self._o = owner
        self._smtp: smtplib.SMTP | None = None
        self.payload_sent = False  # the final "." of DATA may have reached the server
        self.original: BaseException | None = None  # what smtplib raised inside the session

    def _track(self, smtp: smtplib.SMTP) -> None:
        """Note the moment the message's terminating ``CRLF.CRLF`` is handed to the socket:
        from then on the server may have accepted it, whatever happens to its reply."""
        send = smtp.send

        def tracked_send(data: bytes | str) -> None:
            if isinstance(data, bytes) and data.endswith(b"\r\n.\r\n"):
                self.payload_sent = True
            send(data)

        smtp.send = tracked_send  # type: ignore[method-assign]

    def __enter__(self) -> smtplib.SMTP:
        o = self._o
        context = o._tls_context or ssl.create_default_context()
        try:
            if o._port == IMPLICIT_TLS_PORT:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(o._host, o._port, timeout=o._timeout, context=context)
            else:
                smtp = smtplib.SMTP(o._host, o._port, timeout=o._timeout)
            self._smtp = smtp
            self._track(smtp)
            smtp.ehlo()
            tls = o._port == IMPLICIT_TLS_PORT
            if o._starttls and not tls:
                smtp.starttls(context=context)
                smtp.ehlo()
                tls = True
            if o._username:
                if not tls and o._host not in LOOPBACK:
                    raise PermanentError("refusing to send SMTP credentials without TLS: set SMTP_STARTTLS=true "
                                         "or use port 465")
                smtp.login(o._username, o._password)
            return smtp
        except BaseException as exc:
            self._abort()
            raise _classified(exc) from None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> bool:
        self.original = exc
        smtp, self._smtp = self._smtp, None
        assert smtp is not None
        if exc is None:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()  # the message was accepted; a failed QUIT changes nothing
            return False
        try:
            smtp.close()
        except OSError:
            pass
        if isinstance(exc, Exception) and not isinstance(exc, smtplib.SMTPRecipientsRefused | StepError):
            raise _classified(exc) from None
        return False

    def _abort(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            try:
                smtp.close()
            except OSError:
                pass


def _classified(exc: BaseException) -> BaseException:
    """smtplib/socket errors as TransientError (4xx, network) or PermanentError (5xx, config)."""
    if isinstance(exc, StepError | smtplib.SMTPRecipientsRefused) or not isinstance(exc, Exception):
        return exc
    name = type(exc).__name__
    if isinstance(exc, smtplib.SMTPResponseException):
        text = f"{exc.smtp_code} {_text(exc.smtp_error)} ({name})"
        if 400 <= exc.smtp_code < 500:
            return TransientError(text)
        return PermanentError(text)
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return PermanentError(f"server does not support a required extension: {exc} ({name})")
    if isinstance(exc, ssl.SSLCertVerificationError):
        return PermanentError(f"TLS certificate not trusted: {exc.verify_message} ({name})")
    if isinstance(exc, smtplib.SMTPServerDisconnected | socket.timeout | TimeoutError | ConnectionError
                  | ssl.SSLError | OSError):
        return TransientError(f"connection failed: {exc} ({name})")
    if isinstance(exc, smtplib.SMTPException):
        return PermanentError(f"{exc} ({name})")
    return exc


def _server_answered(exc: BaseException | None) -> bool:
    """The server replied with a code (e.g. 451/554 to the DATA): it definitely did not take it."""
    return isinstance(exc, smtplib.SMTPResponseException | smtplib.SMTPRecipientsRefused)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _refusal(address: str, code: int, message: bytes | str) -> str:
    """A refused recipient as the server said it, without the address (the customer's email:
    the text goes into logs, which Prefect cannot delete, and alerts)."""
    text, bare = _text(message), address.strip().strip("<>")
    return f"{code} {text.replace(bare, 'recipient') if bare else text}"
