"""Embedded invoicing: gapless invoice and credit note numbers in orderpipe's database, PDF and UBL in the file store.

Invoice numbers run per seller (VAT id) and year ("2026-000001", ...), credit notes in a
series of their own ("CN-2026-000001", ...). The document is built and rendered (PDF and
UBL, with a placeholder number of the same length) *before* a number is taken: an order
that cannot be invoiced or laid out fails with a permanent error and uses no number. Then
one transaction reads the order's (refund's) row, or takes the next number from the
seller's counter row (locked by its UPDATE ... RETURNING; SQLite serialises the whole
transaction with BEGIN IMMEDIATE) and inserts the row with the document as issued; a
number is only used when that transaction commits, so numbers have no gaps and no
duplicates. The files are rendered again with the real number after the commit, and
whenever one is missing, so a crash between the two heals on the next call.

The files go through the file store under ``invoices/<number>.pdf`` and ``.xml``: with the
local store that is ``<data dir>/invoices/<number>.pdf|.xml`` (the contract's paths), with
S3 ``<ORDERPIPE_S3_INVOICE_PREFIX><number>.pdf|.xml``, readable from every machine.

Credit notes (:meth:`LocalInvoicing.issue_credit_note`): one per Stripe refund, against the
order's stored invoice, the refund split across the invoice's VAT rates exactly
(``orderpipe.invoicing.credit_note``); a refund larger than what is left raises
``RefundExceedsInvoice``; an order not invoiced yet raises ``NotInvoicedYet`` (transient:
the refund flow waits for the invoice).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from orderpipe.connectors.base import CreditNoteResult, FileStore, InvoiceResult, StoredFile, VatLine, VatPart
from orderpipe.connectors.file_store_local import LocalFileStore, check_writable
from orderpipe.db import insert_ignore, session_scope
from orderpipe.errors import PermanentError, StepError, TransientError
from orderpipe.invoicing.credit_note import RefundPart, build_credit_note
from orderpipe.invoicing.document import InvoiceDocument, build_invoice
from orderpipe.invoicing.pdf import render_invoice_pdf
from orderpipe.invoicing.seller import Seller
from orderpipe.invoicing.ubl import render_ubl
from orderpipe.order import Order
from orderpipe.tables import CreditNoteCounter, CreditNoteRecord, Invoice, InvoiceCounter

INVOICE_DIR = "invoices"
PDF_TYPE = "application/pdf"
XML_TYPE = "application/xml"
_ATTEMPTS = 3
PLACEHOLDER_SEQ = 999_999  # the draft's number while it is rendered to check the layout


def utc_today() -> date:
    return datetime.now(UTC).date()


def invoice_number(year: int, seq: int) -> str:
    return f"{year}-{seq:06d}"


def credit_note_number(year: int, seq: int) -> str:
    return f"CN-{year}-{seq:06d}"


class NotInvoicedYet(TransientError):
    """A refund names an order whose invoice does not exist (yet): retry once it is invoiced."""


class _AlreadyIssued(Exception):
    def __init__(self, row: Invoice | CreditNoteRecord) -> None:
        self.row = row


class _CreditedMeanwhile(Exception):
    """Another credit note for the same invoice committed while this one was being built."""


def vat_lines(doc: InvoiceDocument) -> list[VatLine]:
    return [VatLine(line_id=ln.line_id, net=ln.net, tax=ln.tax, rate=ln.rate, category=ln.category.value)
            for ln in doc.lines]


def vat_parts(doc: InvoiceDocument) -> list[VatPart]:
    return [VatPart(category=s.category.value, rate=s.rate, taxable=s.taxable, tax=s.tax,
                    exemption_reason_code=s.exemption_reason_code) for s in doc.tax_subtotals]


class LocalInvoicing:
    """InvoicingConnector issuing invoices itself (also the first step of the Netvisor connector)."""

    name = "local"

    def __init__(
        self,
        engine: Engine,
        files: FileStore | Path,
        seller: Seller,
        default_vat_rate: Decimal,
        *,
        today: Callable[[], date] = utc_today,
    ) -> None:
        self.engine = engine
        # A directory means the local store under it (the data dir), as before.
        self.files: FileStore = LocalFileStore(files) if isinstance(files, Path) else files
        self.seller = seller
        self.default_vat_rate = default_vat_rate
        self.today = today

    def check(self) -> None:
        if isinstance(self.files, LocalFileStore):
            check_writable(self.files.data_dir / INVOICE_DIR, "local invoicing")
        else:
            self.files.check()

    # ---- invoices ------------------------------------------------------------------------

    def create_invoice(self, order: Order) -> InvoiceResult:
        found = self.find(order.order_id)
        if found is not None:
            return self._invoice_result(found, self.invoice_document(found, order), created=False)
        issue_date = self.today()
        # Build and render first: an order that cannot be invoiced or laid out fails here
        # (a permanent error) and never takes a number.
        draft = build_invoice(
            order, self.seller, number=invoice_number(issue_date.year, PLACEHOLDER_SEQ), issue_date=issue_date,
            default_vat_rate=self.default_vat_rate,
        )
        rendered: dict[str, bytes] = {}
        row, created = self._issue(order, draft, rendered)
        doc = self.invoice_document(row, order) if not created else draft.model_copy(
            update={"number": row.number, "issue_date": date.fromisoformat(row.issue_date)})
        return self._invoice_result(row, doc, created=created, rendered=rendered)

    def find(self, order_id: str) -> Invoice | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.exec(select(Invoice).where(Invoice.order_id == order_id)).first()

    def invoice_document(self, row: Invoice, order: Order | None = None) -> InvoiceDocument:
        """The invoice as issued: stored with the row; for rows from before that, rebuilt from the order."""
        if row.document:
            return InvoiceDocument.model_validate_json(row.document)
        if order is None:
            raise PermanentError(f"invoice {row.number} of order {row.order_id} has no stored document; "
                                 "pass the order to rebuild it")
        doc = build_invoice(order, self.seller, number=row.number, issue_date=date.fromisoformat(row.issue_date),
                            default_vat_rate=self.default_vat_rate)
        if doc.payable != row.amount_total:
            raise PermanentError(f"invoice {row.number}: rebuilt from order {row.order_id} it comes to {doc.payable}, "
                                 f"but it was issued for {row.amount_total}; a person must check")
        return doc

    def _invoice_result(self, row: Invoice, doc: InvoiceDocument, *, created: bool,
                        rendered: dict[str, bytes] | None = None) -> InvoiceResult:
        pdf, xml = self._write_files(doc, rewrite=created, rendered=rendered)
        return InvoiceResult(
            invoice_number=row.number,
            issue_date=row.issue_date,
            currency=row.currency,
            amount_total=row.amount_total,
            amount_tax=row.amount_tax,
            pdf_key=pdf.key,
            xml_key=xml.key,
            pdf_path=pdf.path,
            xml_path=xml.path,
            vendor_id=row.vendor_id,
            created=created,
            vat_lines=vat_lines(doc),
            vat_breakdown=vat_parts(doc),
            vat_notes=list(doc.vat_notes),
        )

    def _issue(self, order: Order, draft: InvoiceDocument, rendered: dict[str, bytes]) -> tuple[Invoice, bool]:
        for attempt in range(_ATTEMPTS):
            try:
                return self._issue_once(order, draft, rendered), True
            except _AlreadyIssued as found:
                return found.row, False  # type: ignore[return-value]
            except IntegrityError:
                # The same order was invoiced by a concurrent call (under another year's
                # counter, or before our lock): our transaction rolled back, number unused.
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _issue_once(self, order: Order, draft: InvoiceDocument, rendered: dict[str, bytes]) -> Invoice:
        """Take the next number and render the final PDF and UBL *before* committing it: a
        layout failure rolls the number back (one render, not a check render and a real one)."""
        seller_id = self.seller.seller_id
        year = draft.issue_date.year
        with session_scope(self.engine) as session:
            self._raise_if_invoiced(session, order.order_id)
            seq = self._next_seq(session, InvoiceCounter, seller_id, year)
            # Holding the counter lock now: a concurrent call for this order has committed or not started.
            self._raise_if_invoiced(session, order.order_id)
            number = invoice_number(year, seq)
            final = draft.model_copy(update={"number": number})
            row = Invoice(
                order_id=order.order_id,
                seller_id=seller_id,
                year=year,
                seq=seq,
                number=number,
                issue_date=draft.issue_date.isoformat(),
                currency=order.currency.lower(),
                amount_total=draft.payable,
                amount_tax=draft.tax_total,
                document=final.model_dump_json(),
            )
            session.add(row)
            session.flush()
            rendered.update(self._render(final, "invoice"))
            return row

    @staticmethod
    def _next_seq(session: Session, model: type[InvoiceCounter] | type[CreditNoteCounter], seller_id: str,
                  year: int) -> int:
        insert_ignore(session, model, {"seller_id": seller_id, "year": year, "last_seq": 0})
        counter = model.__table__  # type: ignore[attr-defined]
        return int(session.execute(
            update(counter)
            .where(counter.c.seller_id == seller_id, counter.c.year == year)
            .values(last_seq=counter.c.last_seq + 1)
            .returning(counter.c.last_seq)
        ).scalar_one())

    @staticmethod
    def _raise_if_invoiced(session: Session, order_id: str) -> None:
        row = session.exec(select(Invoice).where(Invoice.order_id == order_id)).first()
        if row is not None:
            session.expunge(row)
            raise _AlreadyIssued(row)

    # ---- credit notes ----------------------------------------------------------------------

    def issue_credit_note(self, order_id: str, refund_id: str, amount: int, *, language: str = "en",
                          order: Order | None = None) -> CreditNoteResult:
        """Credit ``amount`` (minor units) of the order's invoice for Stripe refund ``refund_id``, once.

        Idempotent by refund: a repeat returns the first credit note (``created=False``) and
        re-renders files that are missing. ``language`` is the PDF's (the order's email
        language); ``order`` is only needed for invoices issued before documents were stored.
        Raises ``NotInvoicedYet`` (transient), ``RefundExceedsInvoice`` / ``PdfLayoutError``
        (permanent; no number used)."""
        found = self.find_credit_note(refund_id)
        if found is not None:
            return self._credit_note_result(found, InvoiceDocument.model_validate_json(found.document), created=False)
        invoice_row = self.find(order_id)
        if invoice_row is None:
            raise NotInvoicedYet(f"order {order_id}: refund {refund_id}: the order has no invoice yet to credit")
        invoice = self.invoice_document(invoice_row, order)
        for _attempt in range(_ATTEMPTS):
            previous = self.credit_notes(order_id)
            credited = [RefundPart.model_validate(p) for r in previous for p in json.loads(r.parts)]
            issue_date = self.today()
            draft = build_credit_note(
                invoice, amount, number=credit_note_number(issue_date.year, PLACEHOLDER_SEQ), issue_date=issue_date,
                refund_id=refund_id, credited=credited, language=language,
            )
            self._render(draft, "credit note")  # a layout failure before the number is taken
            try:
                row, created = self._issue_credit_note_once(invoice_row, draft, [r.id for r in previous])
            except _AlreadyIssued as already:
                row, created = already.row, False  # type: ignore[assignment]
            except (_CreditedMeanwhile, IntegrityError):
                continue  # rolled back, number unused: split again against what is credited now
            doc = InvoiceDocument.model_validate_json(row.document)  # type: ignore[union-attr]
            return self._credit_note_result(row, doc, created=created)  # type: ignore[arg-type]
        raise TransientError(f"order {order_id}: refund {refund_id}: concurrent credit notes kept changing the "
                             "invoice's refundable amount; retry")

    def find_credit_note(self, refund_id: str) -> CreditNoteRecord | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.exec(select(CreditNoteRecord).where(CreditNoteRecord.refund_id == refund_id)).first()

    def credit_notes(self, order_id: str) -> list[CreditNoteRecord]:
        """The order's credit notes, oldest first (for status: number, amount, refund id)."""
        with Session(self.engine, expire_on_commit=False) as session:
            return list(session.exec(select(CreditNoteRecord).where(CreditNoteRecord.order_id == order_id)
                                     .order_by(CreditNoteRecord.id)).all())  # type: ignore[arg-type]

    def _issue_credit_note_once(self, invoice_row: Invoice, draft: InvoiceDocument,
                                previous_ids: list[int | None]) -> tuple[CreditNoteRecord, bool]:
        seller_id = self.seller.seller_id
        year = draft.issue_date.year
        refund_id = draft.refund_id or ""
        with session_scope(self.engine) as session:
            self._raise_if_credited(session, refund_id)
            seq = self._next_seq(session, CreditNoteCounter, seller_id, year)
            # Holding the counter lock: re-check the refund and what the invoice has had credited.
            self._raise_if_credited(session, refund_id)
            now = [r.id for r in session.exec(select(CreditNoteRecord)
                                              .where(CreditNoteRecord.order_id == invoice_row.order_id)
                                              .order_by(CreditNoteRecord.id)).all()]  # type: ignore[arg-type]
            if now != previous_ids:
                raise _CreditedMeanwhile()
            number = credit_note_number(year, seq)
            doc = draft.model_copy(update={"number": number})
            row = CreditNoteRecord(
                refund_id=refund_id,
                order_id=invoice_row.order_id,
                invoice_number=invoice_row.number,
                seller_id=seller_id,
                year=year,
                seq=seq,
                number=number,
                issue_date=doc.issue_date.isoformat(),
                currency=invoice_row.currency,
                amount_total=doc.payable,
                amount_tax=doc.tax_total,
                parts=json.dumps([
                    {"category": s.category.value, "rate": str(s.rate), "amount": s.taxable + s.tax,
                     "taxable": s.taxable, "tax": s.tax} for s in doc.tax_subtotals
                ]),
                document=doc.model_dump_json(),
            )
            session.add(row)
            session.flush()
            session.expunge(row)
            return row, True

    @staticmethod
    def _raise_if_credited(session: Session, refund_id: str) -> None:
        row = session.exec(select(CreditNoteRecord).where(CreditNoteRecord.refund_id == refund_id)).first()
        if row is not None:
            session.expunge(row)
            raise _AlreadyIssued(row)

    def _credit_note_result(self, row: CreditNoteRecord, doc: InvoiceDocument, *, created: bool) -> CreditNoteResult:
        pdf, xml = self._write_files(doc, rewrite=created)
        return CreditNoteResult(
            number=row.number, refund_id=row.refund_id, order_id=row.order_id, invoice_number=row.invoice_number,
            issue_date=row.issue_date, currency=row.currency, amount_total=row.amount_total,
            amount_tax=row.amount_tax, vat_breakdown=vat_parts(doc), pdf_key=pdf.key, xml_key=xml.key,
            pdf_path=pdf.path, xml_path=xml.path, vendor_id=row.vendor_id, created=created,
        )

    # ---- files -------------------------------------------------------------------------

    @staticmethod
    def keys(number: str) -> tuple[str, str]:
        """File store keys of an invoice's (or credit note's) PDF and UBL."""
        return f"{INVOICE_DIR}/{number}.pdf", f"{INVOICE_DIR}/{number}.xml"

    @staticmethod
    def _render(doc: InvoiceDocument, what: str) -> dict[str, bytes]:
        """PDF and UBL of a document; a layout failure says that no number was used (the caller
        renders before the number is committed)."""
        try:
            return {PDF_TYPE: render_invoice_pdf(doc), XML_TYPE: render_ubl(doc)}
        except StepError as exc:
            raise type(exc)(f"{exc}; no {what} number was used") from exc

    def _write_files(self, doc: InvoiceDocument, *, rewrite: bool,
                     rendered: dict[str, bytes] | None = None) -> tuple[StoredFile, StoredFile]:
        """`rendered`: the bytes already rendered for this very document (content type -> bytes)."""
        pdf_key, xml_key = self.keys(doc.number)
        what = "credit note" if doc.is_credit_note else "invoice"
        stored: list[StoredFile] = []
        rendered = rendered or {}
        for key, content_type, render in ((pdf_key, PDF_TYPE, render_invoice_pdf), (xml_key, XML_TYPE, render_ubl)):
            try:
                if rewrite or not self.files.exists(key):
                    content = rendered.get(content_type)
                    stored.append(self.files.put(key, content if content is not None else render(doc), content_type))
                else:
                    stored.append(self._stored(key))
            except TransientError as exc:
                raise TransientError(f"order {doc.order_id}: {what} {doc.number}: {exc}",
                                     retry_after=exc.retry_after) from exc
            except StepError as exc:
                raise type(exc)(f"order {doc.order_id}: {what} {doc.number}: {exc}") from exc
        return stored[0], stored[1]

    def _stored(self, key: str) -> StoredFile:
        """What ``put`` would say about a file already in the store (local path when local)."""
        if isinstance(self.files, LocalFileStore):
            path = self.files.path_for(key).resolve()
            return StoredFile(key=key, path=str(path), url=path.as_uri())
        return StoredFile(key=key)
