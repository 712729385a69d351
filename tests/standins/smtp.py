"""SMTP stand-in: an aiosmtpd server on a free loopback port that captures messages.

Faults are queued per SMTP command (``"RCPT"`` or ``"DATA"``) and each answers one command:
``fail_next("DATA", "451 4.3.0 Try again later")`` makes the next DATA transient,
``fail_next("RCPT", "550 5.1.1 Mailbox unavailable")`` refuses the next recipient. With
``reject_all`` every RCPT is refused with that reply; ``drop_after_next_data()`` accepts the
next message and then cuts the connection before the ``250`` (the outcome the client cannot
know). Optional AUTH (``username``/``password``) and STARTTLS (``tls_context``, e.g. a self-signed certificate).
"""

from __future__ import annotations

import ssl
import threading
from collections import deque
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import free_port


@dataclass
class Captured:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        return message_from_bytes(self.raw, policy=policy.default)  # type: ignore[return-value]


class _Handler:
    def __init__(self, owner: SmtpStandIn) -> None:
        self.owner = owner

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        fault = self.owner._take("RCPT")
        if fault:
            return fault
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.owner.data_attempts += 1
        fault = self.owner._take("DATA")
        if fault:
            return fault
        self.owner.messages.append(Captured(envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        if self.owner._take_drop():
            server.transport.abort()  # accepted, then the connection dropped before the 250
        return "250 2.0.0 Message accepted for delivery"


class SmtpStandIn:
    def __init__(self, *, username: str | None = None, password: str | None = None,
                 tls_context: ssl.SSLContext | None = None, reject_all: str | None = None) -> None:
        self.messages: list[Captured] = []
        self.data_attempts = 0
        self.logins: list[str] = []
        self.reject_all = reject_all
        self._drops = 0
        self._faults: dict[str, deque[str]] = {"RCPT": deque(), "DATA": deque()}
        self._lock = threading.Lock()
        self._username, self._password = username, password
        self._tls_context = tls_context
        self._controller: Controller | None = None
        self.port = 0

    def fail_next(self, command: str, reply: str) -> None:
        with self._lock:
            self._faults[command].append(reply)

    def drop_after_next_data(self) -> None:
        """The next message is accepted, then the connection is cut before the ``250`` reply."""
        with self._lock:
            self._drops += 1

    def _take_drop(self) -> bool:
        with self._lock:
            if self._drops:
                self._drops -= 1
                return True
            return False

    def _take(self, command: str) -> str | None:
        if command == "RCPT" and self.reject_all:
            return self.reject_all
        with self._lock:
            queue = self._faults[command]
            return queue.popleft() if queue else None

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> AuthResult:
        if isinstance(data, LoginPassword):
            user, password = data.login.decode(), data.password.decode()
            if user == self._username and password == self._password:
                self.logins.append(user)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    def start(self) -> SmtpStandIn:
        self.port = free_port()
        kwargs: dict[str, Any] = {}
        if self._username is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True,
                          auth_require_tls=self._tls_context is not None)
        if self._tls_context is not None:
            kwargs.update(tls_context=self._tls_context, require_starttls=True)
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port, **kwargs)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpStandIn:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
