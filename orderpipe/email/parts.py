"""What the email APIs (Mailgun, Resend) share: taking a rendered ``EmailMessage`` apart, and
one API call with short rate-limit waits served in-process, its failures naming the order and step."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import getaddresses
from typing import TypeVar

import httpx

from orderpipe.connectors.vendor_http import Sleep, with_rate_limit_retries
from orderpipe.errors import PermanentError, StepError, TransientError

T = TypeVar("T")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class MessageParts:
    sender: str
    to: list[str]
    subject: str
    text: str | None
    html: str | None
    reply_to: str | None = None
    attachments: list[Attachment] = field(default_factory=list)


def message_parts(order_id: str, message: EmailMessage) -> MessageParts:
    """Sender, recipients, subject, text/HTML bodies and attachments of a rendered message."""
    sender = str(message.get("From") or "").strip()
    to = [addr for _name, addr in getaddresses([str(v) for v in message.get_all("To", [])]) if addr]
    if not sender or not to:
        raise PermanentError(f"order {order_id}, step email: the rendered message has no From or To address")
    text_part = message.get_body(preferencelist=("plain",))
    html_part = message.get_body(preferencelist=("html",))
    attachments = []
    for part in message.iter_attachments():
        payload = part.get_payload(decode=True)
        if isinstance(payload, bytes):
            attachments.append(Attachment(filename=part.get_filename() or "attachment",
                                          content_type=part.get_content_type(), data=payload))
    return MessageParts(
        sender=sender, to=to, subject=str(message.get("Subject") or ""),
        text=text_part.get_content() if isinstance(text_part, EmailMessage) else None,
        html=html_part.get_content() if isinstance(html_part, EmailMessage) else None,
        reply_to=str(message["Reply-To"]) if message.get("Reply-To") else None,
        attachments=attachments,
    )


def api_call(order_id: str, attempt: Callable[[], T], *, sleep: Sleep) -> T:
    """Run ``attempt`` with ``with_rate_limit_retries``; a failure is re-raised naming the order and step."""
    try:
        return with_rate_limit_retries(attempt, sleep=sleep)
    except StepError as exc:
        kw = {"retry_after": exc.retry_after} if isinstance(exc, TransientError) else {}
        raise type(exc)(f"order {order_id}, step email: {exc}", **kw) from None


def json_or_text(response: httpx.Response) -> object:
    """The answer's JSON body, or its text when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return response.text
