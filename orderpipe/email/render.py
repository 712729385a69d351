"""Render the order confirmation: an RFC 5322 message in the customer's language.

The message is multipart/mixed: a multipart/alternative (plain text and HTML) followed by
the invoice PDF, read back from the file store (the data dir or S3, the same bytes on every
machine). Money and dates are formatted by Babel for the customer's locale, with the
currency's decimals taken from Stripe's table (orderpipe.money), not CLDR's. The
Message-ID is derived from the order (as every transport derives it), so a resend of the
same confirmation is recognisable.
"""

from __future__ import annotations

import copy
import functools
import html
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import policy
from email.errors import HeaderParseError
from email.headerregistry import Address as MailAddress
from email.message import EmailMessage
from email.utils import format_datetime, parseaddr
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.dates import format_date

from orderpipe.connectors.base import FileStore, InvoiceResult, ShipmentResult
from orderpipe.email.ledger import confirmation_message_id
from orderpipe.email.texts import EmailTexts, pick_language, texts_for
from orderpipe.errors import OrderDataError, PermanentError, StepError, TransientError
from orderpipe.money import exponent, to_decimal
from orderpipe.order import Address, Order

FALLBACK_DOMAIN = "orderpipe.local"
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


@dataclass
class RenderedEmail:
    message: EmailMessage
    language: str
    variables: dict[str, str] = field(default_factory=dict)


def babel_locale(language: str, locale: str | None, country: str | None) -> Locale:
    """The most specific Babel locale that still speaks ``language``.

    Stripe's own tag when it is that language ("fr-CA", "es-419"), else the language in the
    shipping country when CLDR knows the pair ("de_CH", "sv_FI"), else the language alone.
    """
    candidates: list[str] = []
    tag = (locale or "").strip().replace("-", "_")
    if tag and tag.lower() != "auto" and "_" in tag and tag.split("_", 1)[0].lower() == language:
        candidates.append(tag)
    if country:
        candidates.append(f"{language}_{country.upper()}")
    candidates.append(language)
    for name in candidates:
        try:
            return Locale.parse(name)
        except (ValueError, UnknownLocaleError):
            continue
    return Locale.parse("en")


def format_money(minor: int, currency: str, locale: Locale) -> str:
    """Minor units as the locale writes money, with Stripe's decimals (JPY 0, KWD 3, EUR 2)."""
    amount = to_decimal(minor, currency)
    digits = exponent(currency)
    pattern = copy.copy(locale.currency_formats["standard"])
    pattern.frac_prec = (digits, digits)
    return pattern.apply(amount, locale, currency=currency.upper(), currency_digits=False)


def _one_line(value: str) -> str:
    """Header-safe text: no CR/LF (header injection) and no runs of whitespace."""
    return " ".join(value.split())


def message_id_for(order_id: str, sender: str) -> str:
    """Deterministic Message-ID, the same one every transport uses (see email_ledger).

    E.g. ``<order-confirmation.pi_123@pikkuna.example>``; the domain is the sender's.
    """
    local_part, at, domain = parseaddr(sender)[1].rpartition("@")
    if not (local_part and at and _DOMAIN.fullmatch(domain)):
        domain = FALLBACK_DOMAIN
    return confirmation_message_id(order_id, domain)


def _address_lines(address: Address | None, fallback_name: str | None, locale: Locale) -> list[str]:
    if address is None:
        return []
    out = [x for x in (address.name or fallback_name, address.line1, address.line2) if x]
    town = " ".join(x for x in (address.postal_code, address.city) if x)
    out += [x for x in (town, address.state) if x]
    if address.country:
        out.append(locale.territories.get(address.country.upper(), address.country.upper()))
    return out


def _text_body(t: EmailTexts, v: dict[str, str], rows: list[tuple[str, str, str]], address: list[str]) -> str:
    greeting = t.greeting.format(name=v["customer_name"]) if v["customer_name"] else t.greeting_anonymous
    out = [greeting, "", t.thanks, "", t.summary_heading, "-" * len(t.summary_heading)]
    out += [f"{t.order_number}: {v['order_ref']}", f"{t.order_date}: {v['order_date']}", ""]
    out += [f"- {desc} ({t.quantity} {qty}): {amount}" for desc, qty, amount in rows]
    out += ["", f"{t.total}: {v['total']}", f"{t.vat}: {v['vat']}", ""]
    if address:
        out += [t.shipping_address_heading, *address, ""]
    out += [t.tracking.format(tracking_number=v["tracking_number"]), f"{t.track_link}: {v['tracking_url']}"]
    if v.get("label_url"):  # a shared store (S3) gives a presigned link to the label PDF
        out.append(f"PDF: {v['label_url']}")
    out.append("")
    out += [t.invoice_attached.format(invoice_number=v["invoice_number"]), "", t.questions, ""]
    out += [t.sign_off, v["seller_name"], ""]
    return "\n".join(out)


def _html_body(t: EmailTexts, v: dict[str, str], rows: list[tuple[str, str, str]], address: list[str],
               language: str) -> str:
    e = html.escape
    name = v["customer_name"]
    greeting = e(t.greeting.format(name=name)) if name else e(t.greeting_anonymous)
    cell = 'style="padding:4px 8px;border-bottom:1px solid #ddd"'
    num = 'style="padding:4px 8px;border-bottom:1px solid #ddd;text-align:right"'
    lines = "\n".join(
        f"<tr><td {cell}>{e(desc)}</td><td {num}>{e(qty)}</td><td {num}>{e(amount)}</td></tr>"
        for desc, qty, amount in rows
    )
    address_html = ""
    if address:
        address_html = f"<h3>{e(t.shipping_address_heading)}</h3>\n<p>{'<br>'.join(e(x) for x in address)}</p>"
    url = e(v["tracking_url"], quote=True)
    label_html = f'<br><a href="{e(v["label_url"], quote=True)}">PDF</a>' if v.get("label_url") else ""
    return f"""<!DOCTYPE html>
<html lang="{e(language)}">
<head><meta charset="utf-8"><title>{e(v['subject'])}</title></head>
<body style="font-family:Arial,Helvetica,sans-serif;color:#222;line-height:1.4">
<p>{greeting}</p>
<p>{e(t.thanks)}</p>
<h2>{e(t.summary_heading)}</h2>
<p>{e(t.order_number)}: <strong>{e(v['order_ref'])}</strong><br>{e(t.order_date)}: {e(v['order_date'])}</p>
<table style="border-collapse:collapse">
<thead><tr><th {cell}>{e(t.item)}</th><th {num}>{e(t.quantity)}</th><th {num}>{e(t.amount)}</th></tr></thead>
<tbody>
{lines}
</tbody>
<tfoot>
<tr><th {cell} colspan="2">{e(t.total)}</th><th {num}>{e(v['total'])}</th></tr>
<tr><td {cell} colspan="2">{e(t.vat)}</td><td {num}>{e(v['vat'])}</td></tr>
</tfoot>
</table>
{address_html}
<p>{e(t.tracking.format(tracking_number=v['tracking_number']))}<br>
<a href="{url}">{e(t.track_link)}</a>: <a href="{url}">{e(v['tracking_url'])}</a>{label_html}</p>
<p>{e(t.invoice_attached.format(invoice_number=v['invoice_number']))}</p>
<p>{e(t.questions)}</p>
<p>{e(t.sign_off)}<br>{e(v['seller_name'])}</p>
</body>
</html>
"""


def invoice_pdf_bytes(order_id: str, invoice: InvoiceResult, files: FileStore | None) -> bytes:
    """The invoice PDF to attach, read from the file store.

    An invoice result without a store key (issued before invoices went through the store) or
    a call without a store reads the local ``pdf_path``."""
    key = getattr(invoice, "pdf_key", None)  # absent from results cached by older versions
    read: Callable[[], bytes]
    if key and files is not None:
        where, read = key, functools.partial(files.get, key)
    elif invoice.pdf_path:
        where, read = invoice.pdf_path, Path(invoice.pdf_path).read_bytes
    else:
        raise PermanentError(f"order {order_id}: invoice {invoice.invoice_number} names no PDF (step: email)")
    what = f"order {order_id}: cannot read invoice PDF {where} for the confirmation email (step: email)"
    try:
        data = read()
    except OSError as exc:
        raise PermanentError(f"{what}: {exc.strerror or exc.__class__.__name__}") from exc
    except TransientError as exc:
        raise TransientError(f"{what}: {exc}", retry_after=exc.retry_after) from exc
    except StepError as exc:
        raise type(exc)(f"{what}: {exc}") from exc
    if not data.startswith(b"%PDF"):
        raise PermanentError(f"order {order_id}: invoice file {where} is not a PDF (step: email)")
    return data


def render_confirmation(
    order: Order,
    shipment: ShipmentResult,
    invoice: InvoiceResult,
    *,
    sender: str,
    seller_name: str,
    reply_to: str | None,
    now: datetime | None = None,
    files: FileStore | None = None,
) -> RenderedEmail:
    """The confirmation email of an order, ready for any EmailConnector.

    The attached invoice PDF is read from ``files`` (the configured file store)."""
    if not order.customer_email:
        raise OrderDataError(
            f"order {order.order_id} has no customer email: cannot send the confirmation (step: email)"
        )
    name = _one_line(order.customer_name or order.recipient_name or "")
    try:
        to = MailAddress(display_name=name, addr_spec=order.customer_email.strip())
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise OrderDataError(
            f"order {order.order_id} has an invalid customer email (see the order in Stripe; step: email)"
        ) from exc

    language = pick_language(order.locale, order.country)
    texts = texts_for(language)
    loc = babel_locale(language, order.locale, order.country)
    order_ref = _one_line(order.reference or order.order_id)
    subject = _one_line(texts.subject.format(order_ref=order_ref))
    rows = [(texts.shipping_line if line.is_shipping else line.description, str(line.quantity),
             format_money(line.amount_total, order.currency, loc)) for line in order.lines]
    variables = {
        "language": language,
        "subject": subject,
        "customer_name": name,
        "customer_email": to.addr_spec,
        "order_id": order.order_id,
        "order_ref": order_ref,
        "order_date": format_date(order.created.date(), format="long", locale=loc),
        "currency": order.currency.upper(),
        "total": format_money(order.amount_total, order.currency, loc),
        "vat": format_money(invoice.amount_tax, invoice.currency, loc),
        "items": "; ".join(f"{qty} × {desc}" for desc, qty, _ in rows),
        "carrier": shipment.carrier,
        "tracking_number": shipment.tracking_number,
        "tracking_url": shipment.tracking_url,
        "label_url": shipment.label.url if (shipment.label.url or "").startswith(("https://", "http://")) else "",
        "invoice_number": invoice.invoice_number,
        "invoice_date": invoice.issue_date,
        "seller_name": seller_name,
    }
    address = _address_lines(order.shipping_address, order.recipient_name, loc)
    pdf = invoice_pdf_bytes(order.order_id, invoice, files)

    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = _one_line(sender)
    msg["To"] = to
    if reply_to:
        msg["Reply-To"] = _one_line(reply_to)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = message_id_for(order.order_id, sender)
    msg["X-Orderpipe-Order-Id"] = order.order_id
    msg.set_content(_text_body(texts, variables, rows, address))
    msg.add_alternative(_html_body(texts, variables, rows, address, language), subtype="html")
    filename = re.sub(r"[^\w.-]", "-", invoice.invoice_number) + ".pdf"
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=filename)
    # Set last: making the message multipart moves Content-* headers into the first part.
    msg["Content-Language"] = language
    return RenderedEmail(message=msg, language=language, variables=variables)
