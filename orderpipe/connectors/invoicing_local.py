"""Embedded invoicing: gapless invoice numbers in orderpipe's database, PDF and UBL in the file store.

Numbers run per seller and year ("2026-000001", "2026-000002", ...). One transaction reads
the order's invoice row, or takes the next number from the seller's counter row (locked by
its UPDATE ... RETURNING; SQLite serialises the whole transaction with BEGIN IMMEDIATE) and
inserts the invoice row; a number is only used when that transaction commits, so numbers
have no gaps and no duplicates. The files are written after the commit and re-rendered
whenever one is missing, so a crash between the two heals on the next call.

The files go through the file store under ``invoices/<number>.pdf`` and ``.xml``: with the
local store that is ``<data dir>/invoices/<number>.pdf|.xml`` (the contract's paths), with
S3 ``<ORDERPIPE_S3_INVOICE_PREFIX><number>.pdf|.xml``, readable from every machine.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from orderpipe.connectors.base import FileStore, InvoiceResult, StoredFile
from orderpipe.connectors.file_store_local import LocalFileStore, check_writable
from orderpipe.db import insert_ignore, session_scope
from orderpipe.errors import StepError, TransientError
from orderpipe.invoice_doc import InvoiceDocument, build_invoice
from orderpipe.invoice_pdf import render_invoice_pdf
from orderpipe.order import Order
from orderpipe.seller import Seller
from orderpipe.tables import Invoice, InvoiceCounter
from orderpipe.ubl import render_ubl

INVOICE_DIR = "invoices"
PDF_TYPE = "application/pdf"
XML_TYPE = "application/xml"
_ATTEMPTS = 3


def utc_today() -> date:
    return datetime.now(UTC).date()


def invoice_number(year: int, seq: int) -> str:
    return f"{year}-{seq:06d}"


class _AlreadyInvoiced(Exception):
    def __init__(self, row: Invoice) -> None:
        self.row = row


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

    def create_invoice(self, order: Order) -> InvoiceResult:
        # Build first: an order that cannot be invoiced fails here and never takes a number.
        draft = build_invoice(
            order, self.seller, number="DRAFT", issue_date=self.today(), default_vat_rate=self.default_vat_rate
        )
        row, created = self._issue(order, draft)
        doc = draft.model_copy(update={"number": row.number, "issue_date": date.fromisoformat(row.issue_date)})
        pdf, xml = self._write_files(doc, rewrite=created)
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
        )

    def find(self, order_id: str) -> Invoice | None:
        with Session(self.engine, expire_on_commit=False) as session:
            return session.exec(select(Invoice).where(Invoice.order_id == order_id)).first()

    # ---- numbering ---------------------------------------------------------------------

    def _issue(self, order: Order, draft: InvoiceDocument) -> tuple[Invoice, bool]:
        for attempt in range(_ATTEMPTS):
            try:
                return self._issue_once(order, draft), True
            except _AlreadyInvoiced as found:
                return found.row, False
            except IntegrityError:
                # The same order was invoiced by a concurrent call (under another year's
                # counter, or before our lock): our transaction rolled back, number unused.
                if attempt == _ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _issue_once(self, order: Order, draft: InvoiceDocument) -> Invoice:
        seller_id = self.seller.seller_id
        year = draft.issue_date.year
        with session_scope(self.engine) as session:
            self._raise_if_invoiced(session, order.order_id)
            insert_ignore(session, InvoiceCounter, {"seller_id": seller_id, "year": year, "last_seq": 0})
            counter = InvoiceCounter.__table__  # type: ignore[attr-defined]
            seq = session.execute(
                update(counter)
                .where(counter.c.seller_id == seller_id, counter.c.year == year)
                .values(last_seq=counter.c.last_seq + 1)
                .returning(counter.c.last_seq)
            ).scalar_one()
            # Holding the counter lock now: a concurrent call for this order has committed or not started.
            self._raise_if_invoiced(session, order.order_id)
            row = Invoice(
                order_id=order.order_id,
                seller_id=seller_id,
                year=year,
                seq=seq,
                number=invoice_number(year, seq),
                issue_date=draft.issue_date.isoformat(),
                currency=order.currency.lower(),
                amount_total=draft.payable,
                amount_tax=draft.tax_total,
            )
            session.add(row)
            session.flush()
            return row

    @staticmethod
    def _raise_if_invoiced(session: Session, order_id: str) -> None:
        row = session.exec(select(Invoice).where(Invoice.order_id == order_id)).first()
        if row is not None:
            session.expunge(row)
            raise _AlreadyInvoiced(row)

    # ---- files -------------------------------------------------------------------------

    @staticmethod
    def keys(number: str) -> tuple[str, str]:
        """File store keys of an invoice's (or credit note's) PDF and UBL."""
        return f"{INVOICE_DIR}/{number}.pdf", f"{INVOICE_DIR}/{number}.xml"

    def _write_files(self, doc: InvoiceDocument, *, rewrite: bool) -> tuple[StoredFile, StoredFile]:
        pdf_key, xml_key = self.keys(doc.number)
        stored: list[StoredFile] = []
        for key, content_type, render in ((pdf_key, PDF_TYPE, render_invoice_pdf), (xml_key, XML_TYPE, render_ubl)):
            try:
                if rewrite or not self.files.exists(key):
                    stored.append(self.files.put(key, render(doc), content_type))
                else:
                    stored.append(self._stored(key))
            except TransientError as exc:
                raise TransientError(f"order {doc.order_id}: invoice {doc.number}: {exc}",
                                     retry_after=exc.retry_after) from exc
            except StepError as exc:
                raise type(exc)(f"order {doc.order_id}: invoice {doc.number}: {exc}") from exc
        return stored[0], stored[1]

    def _stored(self, key: str) -> StoredFile:
        """What ``put`` would say about a file already in the store (local path when local)."""
        if isinstance(self.files, LocalFileStore):
            path = self.files.path_for(key).resolve()
            return StoredFile(key=key, path=str(path), url=path.as_uri())
        return StoredFile(key=key)
