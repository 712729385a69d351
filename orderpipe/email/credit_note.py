"""The credit note email: a short RFC 5322 message in the order's language, credit note PDF attached.

Same language choice as the confirmation (``pick_language``), money formatted by Babel for
the customer's locale with Stripe's decimals. The Message-ID is derived from the refund id,
and every transport keys its idempotency on it (the message is sent "for" the refund id),
so a retried or replayed refund run never emails twice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.errors import HeaderParseError
from email.headerregistry import Address as MailAddress
from email.message import EmailMessage
from email.utils import format_datetime

from orderpipe.connectors.base import CreditNoteResult, FileStore
from orderpipe.email.render import RenderedEmail, _one_line, babel_locale, format_money, message_id_for
from orderpipe.email.texts import pick_language
from orderpipe.errors import OrderDataError, PermanentError
from orderpipe.order import Order


@dataclass(frozen=True)
class CreditNoteTexts:
    subject: str  # {order_ref}
    greeting: str  # {name}
    greeting_anonymous: str
    body: str  # {amount} {invoice_number} {credit_note_number}
    sign_off: str


CREDIT_NOTE_TEXTS: dict[str, CreditNoteTexts] = {
    "en": CreditNoteTexts("Refund for order {order_ref}", "Hi {name},", "Hello,",
                          "We have refunded {amount} for your order. Credit note {credit_note_number} for invoice "
                          "{invoice_number} is attached to this email as a PDF.", "Best regards,"),
    "fi": CreditNoteTexts("Hyvitys tilauksesta {order_ref}", "Hei {name},", "Hei,",
                          "Olemme palauttaneet tilauksestasi {amount}. Hyvityslasku {credit_note_number} laskuun "
                          "{invoice_number} on tämän viestin liitteenä PDF-tiedostona.", "Ystävällisin terveisin,"),
    "sv": CreditNoteTexts("Återbetalning för order {order_ref}", "Hej {name},", "Hej,",
                          "Vi har återbetalat {amount} för din order. Kreditfaktura {credit_note_number} till faktura "
                          "{invoice_number} bifogas som PDF.", "Vänliga hälsningar,"),
    "da": CreditNoteTexts("Refusion for ordre {order_ref}", "Hej {name},", "Hej,",
                          "Vi har refunderet {amount} for din ordre. Kreditnota {credit_note_number} til faktura "
                          "{invoice_number} er vedhæftet som PDF.", "Venlig hilsen,"),
    "nb": CreditNoteTexts("Refusjon for ordre {order_ref}", "Hei {name},", "Hei,",
                          "Vi har refundert {amount} for ordren din. Kreditnota {credit_note_number} til faktura "
                          "{invoice_number} er vedlagt som PDF.", "Vennlig hilsen,"),
    "de": CreditNoteTexts("Erstattung zu Bestellung {order_ref}", "Hallo {name},", "Hallo,",
                          "Wir haben {amount} für Ihre Bestellung erstattet. Die Gutschrift {credit_note_number} zur "
                          "Rechnung {invoice_number} finden Sie im Anhang als PDF.", "Mit freundlichen Grüßen,"),
    "fr": CreditNoteTexts("Remboursement de la commande {order_ref}", "Bonjour {name},", "Bonjour,",
                          "Nous avons remboursé {amount} pour votre commande. L'avoir {credit_note_number} sur la "
                          "facture {invoice_number} est joint à ce message au format PDF.", "Cordialement,"),
    "es": CreditNoteTexts("Reembolso del pedido {order_ref}", "Hola {name}:", "Hola:",
                          "Hemos reembolsado {amount} de tu pedido. La factura rectificativa {credit_note_number} de "
                          "la factura {invoice_number} se adjunta en PDF.", "Saludos cordiales,"),
    "it": CreditNoteTexts("Rimborso dell'ordine {order_ref}", "Ciao {name},", "Salve,",
                          "Abbiamo rimborsato {amount} per il tuo ordine. La nota di credito {credit_note_number} "
                          "della fattura {invoice_number} è allegata in PDF.", "Cordiali saluti,"),
    "nl": CreditNoteTexts("Terugbetaling voor bestelling {order_ref}", "Hoi {name},", "Hallo,",
                          "We hebben {amount} van je bestelling terugbetaald. Creditnota {credit_note_number} bij "
                          "factuur {invoice_number} is als pdf bijgevoegd.", "Met vriendelijke groet,"),
    "pt": CreditNoteTexts("Reembolso da encomenda {order_ref}", "Olá {name},", "Olá,",
                          "Reembolsámos {amount} da sua encomenda. A nota de crédito {credit_note_number} da fatura "
                          "{invoice_number} segue em anexo em PDF.", "Com os melhores cumprimentos,"),
}


def render_credit_note_email(order: Order, cn: CreditNoteResult, *, sender: str, seller_name: str,
                             reply_to: str | None, files: FileStore, now: datetime | None = None) -> RenderedEmail:
    if not order.customer_email:
        raise OrderDataError(f"order {order.order_id} has no customer email: cannot send credit note {cn.number}")
    name = _one_line(order.customer_name or order.recipient_name or "")
    try:
        to = MailAddress(display_name=name, addr_spec=order.customer_email.strip())
    except (ValueError, IndexError, HeaderParseError) as exc:
        raise OrderDataError(f"order {order.order_id} has an invalid customer email (see the order in Stripe)") from exc
    language = pick_language(order.locale, order.country)
    texts = CREDIT_NOTE_TEXTS.get(language, CREDIT_NOTE_TEXTS["en"])
    loc = babel_locale(language, order.locale, order.country)
    order_ref = _one_line(order.reference or order.order_id)
    amount = format_money(cn.amount_total, cn.currency, loc)
    subject = _one_line(texts.subject.format(order_ref=order_ref))
    greeting = texts.greeting.format(name=name) if name else texts.greeting_anonymous
    body = texts.body.format(amount=amount, credit_note_number=cn.number, invoice_number=cn.invoice_number)
    if not cn.pdf_key:
        raise PermanentError(f"order {order.order_id}: credit note {cn.number} names no PDF")
    pdf = files.get(cn.pdf_key)
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = _one_line(sender)
    msg["To"] = to
    if reply_to:
        msg["Reply-To"] = _one_line(reply_to)
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now or datetime.now(UTC))
    msg["Message-ID"] = message_id_for(cn.refund_id, sender)
    msg["X-Orderpipe-Order-Id"] = order.order_id
    msg["X-Orderpipe-Refund-Id"] = cn.refund_id
    msg.set_content("\n".join([greeting, "", body, "", texts.sign_off, seller_name, ""]))
    msg.add_attachment(pdf, maintype="application", subtype="pdf",
                       filename=re.sub(r"[^\w.-]", "-", cn.number) + ".pdf")
    msg["Content-Language"] = language
    variables = {"language": language, "subject": subject, "customer_name": name, "customer_email": to.addr_spec,
                 "order_id": order.order_id, "order_ref": order_ref, "refund_id": cn.refund_id,
                 "amount": amount, "credit_note_number": cn.number, "invoice_number": cn.invoice_number,
                 "seller_name": seller_name}
    return RenderedEmail(message=msg, language=language, variables=variables)
