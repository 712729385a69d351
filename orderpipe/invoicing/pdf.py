"""The invoice (and credit note) PDF a person reads (reportlab, DejaVu fonts so names render as themselves).

Invoices are bilingual English / Finnish (the seller's languages); credit notes are in the
customer's language (``doc.language``, one of ``orderpipe.email.texts.LANGUAGES``, English
otherwise). A document the layout cannot fit raises :class:`PdfLayoutError`, a permanent
error: the invoicing connector renders before it commits a number, so no number is used.
"""

from __future__ import annotations

import io
import threading
from decimal import Decimal
from xml.sax.saxutils import escape

from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle
from reportlab.platypus.doctemplate import LayoutError

from orderpipe.errors import PermanentError
from orderpipe.invoicing.document import InvoiceDocument, InvoiceParty, TaxCategory, format_rate
from orderpipe.pdf_fonts import one_at_a_time, printable, register

CATEGORY_LABELS = {
    TaxCategory.STANDARD: "Standard rate / Yleinen",
    TaxCategory.INTRA_COMMUNITY: "Intra-community supply / Yhteisömyynti",
    TaxCategory.EXPORT: "Export / Vienti",
    TaxCategory.REVERSE_CHARGE: "Reverse charge / Käännetty verovelvollisuus",
    TaxCategory.ZERO_RATED: "Zero rated / Nollaverokannan myynti",
    TaxCategory.EXEMPT: "Exempt / Veroton",
}


LABEL_KEYS = (
    "title", "number", "date", "credits", "order", "refund", "seller", "buyer", "delivery", "description", "qty",
    "vat_pct", "net", "vat", "total", "breakdown", "taxable", "total_excl", "total_incl", "refunded", "vat_id",
)
INVOICE_LABELS = {
    "title": "Invoice / Lasku", "number": "Invoice number / Laskun numero", "date": "Invoice date / Laskun päivä",
    "order": "Order / Tilaus", "seller": "Seller / Myyjä", "buyer": "Buyer / Ostaja",
    "delivery": "Delivery address / Toimitusosoite", "description": "Description / Kuvaus", "qty": "Qty",
    "vat_pct": "VAT %", "net": "Net", "vat": "VAT", "total": "Total", "breakdown": "VAT breakdown / ALV-erittely",
    "taxable": "Taxable", "total_excl": "Total excl. VAT / Veroton yhteensä",
    "total_incl": "Total incl. VAT / Yhteensä", "vat_id": "VAT id / ALV-tunnus",
}
_CREDIT = {
    "en": "Credit note|Credit note number|Date|Credits invoice|Order|Refund|Seller|Buyer|Delivery address|Description|"
          "Qty|VAT %|Net|VAT|Total|VAT breakdown|Taxable|Total excl. VAT|Total incl. VAT|Refunded to your card|VAT id",
    "fi": "Hyvityslasku|Hyvityslaskun numero|Päivämäärä|Hyvitettävä lasku|Tilaus|Palautus|Myyjä|Ostaja|Toimitusosoite|"
          "Kuvaus|Määrä|ALV %|Veroton|ALV|Yhteensä|ALV-erittely|Veron peruste|Veroton yhteensä|Verollinen yhteensä|"
          "Palautettu kortillesi|ALV-tunnus",
    "sv": "Kreditnota|Kreditnotans nummer|Datum|Krediterar faktura|Beställning|Återbetalning|Säljare|Köpare|"
          "Leveransadress|Beskrivning|Antal|Moms %|Netto|Moms|Summa|Momsspecifikation|Beskattningsunderlag|"
          "Summa exkl. moms|Summa inkl. moms|Återbetalt till ditt kort|Momsregistreringsnummer",
    "da": "Kreditnota|Kreditnotanummer|Dato|Krediterer faktura|Ordre|Refusion|Sælger|Køber|Leveringsadresse|"
          "Beskrivelse|Antal|Moms %|Netto|Moms|I alt|Momsspecifikation|Momsgrundlag|I alt ekskl. moms|"
          "I alt inkl. moms|Refunderet til dit kort|Momsnummer",
    "nb": "Kreditnota|Kreditnotanummer|Dato|Krediterer faktura|Bestilling|Refusjon|Selger|Kjøper|Leveringsadresse|"
          "Beskrivelse|Antall|Mva %|Netto|Mva|Sum|Mva-spesifikasjon|Grunnlag|Sum ekskl. mva|Sum inkl. mva|"
          "Refundert til kortet ditt|Mva-nummer",
    "de": "Gutschrift|Gutschriftsnummer|Datum|Zur Rechnung|Bestellung|Erstattung|Verkäufer|Käufer|Lieferadresse|"
          "Beschreibung|Menge|USt. %|Netto|USt.|Gesamt|USt.-Aufstellung|Bemessungsgrundlage|Gesamt netto|"
          "Gesamt brutto|Auf Ihre Karte erstattet|USt-IdNr.",
    "fr": "Avoir|Numéro d'avoir|Date|Facture concernée|Commande|Remboursement|Vendeur|Acheteur|Adresse de livraison|"
          "Description|Qté|TVA %|HT|TVA|Total|Détail de la TVA|Base imposable|Total HT|Total TTC|"
          "Remboursé sur votre carte|N° de TVA",
    "es": "Factura rectificativa|Número de factura rectificativa|Fecha|Factura rectificada|Pedido|Reembolso|Vendedor|"
          "Comprador|Dirección de entrega|Descripción|Cant.|IVA %|Neto|IVA|Total|Desglose del IVA|Base imponible|"
          "Total sin IVA|Total con IVA|Reembolsado en su tarjeta|NIF-IVA",
    "it": "Nota di credito|Numero nota di credito|Data|Fattura stornata|Ordine|Rimborso|Venditore|Acquirente|"
          "Indirizzo di consegna|Descrizione|Qtà|IVA %|Imponibile|IVA|Totale|Riepilogo IVA|Imponibile|"
          "Totale imponibile|Totale IVA inclusa|Rimborsato sulla tua carta|Partita IVA",
    "nl": "Creditnota|Creditnotanummer|Datum|Crediteert factuur|Bestelling|Terugbetaling|Verkoper|Koper|Afleveradres|"
          "Omschrijving|Aantal|Btw %|Netto|Btw|Totaal|Btw-specificatie|Grondslag|Totaal excl. btw|Totaal incl. btw|"
          "Terugbetaald op je kaart|Btw-nummer",
    "pt": "Nota de crédito|Número da nota de crédito|Data|Fatura creditada|Encomenda|Reembolso|Vendedor|Comprador|"
          "Morada de entrega|Descrição|Qtd.|IVA %|Líquido|IVA|Total|Discriminação do IVA|Base tributável|"
          "Total sem IVA|Total com IVA|Reembolsado no seu cartão|NIF",
}
CREDIT_NOTE_LABELS = {lang: dict(zip(LABEL_KEYS, text.split("|"), strict=True)) for lang, text in _CREDIT.items()}


class PdfLayoutError(PermanentError):
    """The document cannot be laid out (e.g. a line too long for a page): retrying cannot help."""


def labels_for(doc: InvoiceDocument) -> dict[str, str]:
    if doc.is_credit_note:
        return CREDIT_NOTE_LABELS.get(doc.language, CREDIT_NOTE_LABELS["en"])
    return INVOICE_LABELS


# reportlab keeps per-font subsetting state in shared objects: render one PDF at a time per process.
_render_lock = threading.Lock()


def format_amount(amount: int, exponent: int) -> str:
    """Minor units as a grouped decimal: 123456 (2) -> '1 234.56', 500 (0) -> '500'."""
    value = Decimal(amount).scaleb(-exponent)
    return format(value, f",.{exponent}f").replace(",", "\u00a0")


@one_at_a_time
def render_invoice_pdf(doc: InvoiceDocument) -> bytes:
    regular, bold = register()
    styles = {
        "title": ParagraphStyle("title", fontName=bold, fontSize=18, leading=22),
        "h": ParagraphStyle("h", fontName=bold, fontSize=9, leading=12),
        "p": ParagraphStyle("p", fontName=regular, fontSize=9, leading=12),
        "small": ParagraphStyle("small", fontName=regular, fontSize=8, leading=10),
        "right": ParagraphStyle("right", fontName=regular, fontSize=9, leading=12, alignment=TA_RIGHT),
    }

    def para(text: str | None, style: str = "p") -> Paragraph:
        return Paragraph(escape(printable(text)).replace("\n", "<br/>"), styles[style])

    def money(amount: int) -> str:
        return format_amount(amount, doc.exponent)

    cur = doc.currency
    buf = io.BytesIO()
    pdf = SimpleDocTemplate(
        buf,
        pagesize=A4,
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=16 * mm,
        bottomMargin=16 * mm,
        title=f"{'Credit note' if doc.is_credit_note else 'Invoice'} {doc.number}",
        author=doc.seller.name,
    )
    L = labels_for(doc)  # noqa: N806
    story: list[object] = [para(L["title"], "title"), Spacer(1, 4 * mm)]

    if doc.is_credit_note:
        facts = [
            (L["number"], doc.number),
            (L["date"], doc.issue_date.isoformat()),
            (L["credits"], f"{doc.billing_reference or ''}"
             + (f" ({doc.billing_reference_date.isoformat()})" if doc.billing_reference_date else "")),
            (L["order"], doc.order_reference or doc.order_id),
            (L["refund"], doc.refund_id or ""),
        ]
    else:
        facts = [
            (L["number"], doc.number),
            (L["date"], doc.issue_date.isoformat()),
            ("Order date / Tilauspäivä", doc.order_date.date().isoformat()),
            (L["order"], doc.order_reference or doc.order_id),
            ("Payment / Maksu", f"Paid by card / Maksettu kortilla ({doc.order_id})"),
        ]
    story.append(_table([[para(k, "h"), para(v)] for k, v in facts], [62 * mm, 112 * mm], grid=False))
    story.append(Spacer(1, 5 * mm))

    def party_block(title: str, party: InvoiceParty) -> list[Paragraph]:
        out = [para(title, "h"), para(party.name)]
        out += [para(line) for line in party.address_lines()]
        if party.vat_id:
            out.append(para(f"{L['vat_id']}: {party.vat_id}"))
        if party.email:
            out.append(para(party.email))
        return out

    blocks = [[party_block(L["seller"], doc.seller), party_block(L["buyer"], doc.buyer)]]
    if doc.delivery is not None:
        delivery = [para(L["delivery"], "h")] + [para(x) for x in doc.delivery.lines()]
        blocks[0].append(delivery)
    story.append(_table(blocks, [58 * mm] * len(blocks[0]), grid=False))
    story.append(Spacer(1, 6 * mm))

    header = [L["description"], L["qty"], "" if doc.is_credit_note else "Discount", L["vat_pct"],
              f"{L['net']} ({cur})", f"{L['vat']} ({cur})", f"{L['total']} ({cur})"]
    rows: list[list[object]] = [[para(h, "h") for h in header]]
    for line in doc.lines:
        rows.append(
            [
                para(line.description),
                para(str(line.quantity), "right"),
                para(money(line.discount) if line.discount else "", "right"),
                para(f"{format_rate(line.rate)} {line.category.value}", "right"),
                para(money(line.net), "right"),
                para(money(line.tax), "right"),
                para(money(line.gross), "right"),
            ]
        )
    widths = [58 * mm, 12 * mm, 20 * mm, 18 * mm, 22 * mm, 22 * mm, 22 * mm]
    story.append(_table(rows, widths, grid=True, header=True))
    story.append(Spacer(1, 6 * mm))

    vat_rows: list[list[object]] = [
        [para(h, "h") for h in (L["breakdown"], L["vat_pct"], f"{L['taxable']} ({cur})", f"{L['vat']} ({cur})")]
    ]
    for sub in doc.tax_subtotals:
        label = CATEGORY_LABELS[sub.category]
        if sub.exemption_reason_code:
            label = f"{label} ({sub.exemption_reason_code})"
        if sub.exemption_reason and sub.category is not TaxCategory.REVERSE_CHARGE:
            label = f"{label}: {sub.exemption_reason}"
        vat_rows.append(
            [para(label), para(format_rate(sub.rate), "right"), para(money(sub.taxable), "right"),
             para(money(sub.tax), "right")]
        )
    story.append(_table(vat_rows, [88 * mm, 18 * mm, 34 * mm, 34 * mm], grid=True, header=True))
    story.append(Spacer(1, 6 * mm))

    totals = [
        (L["total_excl"], doc.tax_exclusive),
        ("VAT / ALV" if not doc.is_credit_note else L["vat"], doc.tax_total),
        (L["total_incl"], doc.tax_inclusive),
        (L["refunded"] if doc.is_credit_note else "Paid / Maksettu", doc.payable),
    ]
    story.append(
        _table(
            [[para(k, "h"), para(f"{money(v)} {cur}", "right")] for k, v in totals],
            [120 * mm, 54 * mm],
            grid=False,
        )
    )
    if doc.prices_include_vat and not doc.is_credit_note:
        story += [Spacer(1, 3 * mm), para("Prices include VAT. / Hinnat sisältävät arvonlisäveron.", "small")]
    for note in doc.notes:
        story += [Spacer(1, 4 * mm), para(note, "h")]
    story += [
        Spacer(1, 8 * mm),
        para(f"{doc.seller.name} · {L['vat_id']} {doc.seller.vat_id} · {doc.seller.email or ''}", "small"),
    ]
    try:
        with _render_lock:
            pdf.build(story)  # type: ignore[arg-type]
    except LayoutError as exc:
        what = "credit note" if doc.is_credit_note else "invoice"
        raise PdfLayoutError(
            f"order {doc.order_id}: the {what} PDF cannot be laid out (a line or address too long for a page?): "
            f"{' '.join(str(exc).split())[:300]}"
        ) from exc
    return buf.getvalue()


def _table(rows: list[list[object]], widths: list[float], *, grid: bool, header: bool = False) -> Table:
    table = Table(rows, colWidths=widths, hAlign="LEFT", repeatRows=1 if header else 0)
    style = [("VALIGN", (0, 0), (-1, -1), "TOP"), ("LEFTPADDING", (0, 0), (-1, -1), 3)]
    if grid:
        style.append(("LINEBELOW", (0, 0), (-1, -1), 0.25, colors.grey))
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), colors.whitesmoke))
    table.setStyle(TableStyle(style))
    return table
