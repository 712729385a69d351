"""Interfaces of the connectors and the small results they hand back.

Each interface has an embedded implementation (local tables, local files, outbox, log)
and real ones switched on by configuration. Every write is idempotent by order id: calling
it again for the same order returns the first result and creates nothing new.
Implementations raise ``orderpipe.errors.TransientError`` or ``PermanentError``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from email.message import EmailMessage
from typing import Protocol

from pydantic import BaseModel

from orderpipe.order import Order


class CrmResult(BaseModel):
    contact_id: str
    deal_id: str
    created: bool  # False when the deal already existed (idempotent repeat)


class ProductionLogResult(BaseModel):
    entry_id: str
    created: bool


class StoredFile(BaseModel):
    key: str  # relative key, e.g. "labels/pi_123.pdf"
    path: str | None = None  # local filesystem path when the store is local
    url: str | None = None  # link a person can open (presigned for S3)


class ShipmentResult(BaseModel):
    tracking_number: str
    carrier: str
    tracking_url: str
    label: StoredFile
    created: bool


class VatLine(BaseModel):
    """One invoice line's VAT as the invoice states it (same order as the order's lines)."""

    line_id: int
    net: int
    tax: int
    rate: Decimal
    category: str  # UNCL5305: S, K, G, Z, E


class VatPart(BaseModel):
    """One VAT group (category and rate) of an invoice or credit note."""

    category: str
    rate: Decimal
    taxable: int
    tax: int
    exemption_reason_code: str | None = None


class InvoiceResult(BaseModel):
    invoice_number: str
    issue_date: str  # ISO date
    currency: str
    amount_total: int  # payable amount in minor units (== what Stripe charged)
    amount_tax: int
    pdf_key: str | None = None  # file store key of the invoice PDF (attached to the email): invoices/<n>.pdf
    xml_key: str | None = None  # file store key of the UBL 2.1 file: invoices/<n>.xml
    pdf_path: str | None = None  # local file of the PDF, when the store is local
    xml_path: str | None = None  # local file of the UBL, when the store is local
    vendor_id: str | None = None  # e.g. Netvisor's invoice key
    created: bool
    # The VAT split the document states (per line and per rate): Netvisor, the email and the
    # artifact report these, never a recomputation.
    vat_lines: list[VatLine] = []
    vat_breakdown: list[VatPart] = []
    vat_notes: list[str] = []  # e.g. a buyer VAT id that failed its check digit (for the artifact)


class CreditNoteResult(BaseModel):
    number: str  # CN-<year>-<6 digits>
    refund_id: str
    order_id: str
    invoice_number: str  # the invoice it credits
    issue_date: str  # ISO date
    currency: str
    amount_total: int  # == the refund, minor units
    amount_tax: int
    vat_breakdown: list[VatPart]
    pdf_key: str | None = None
    xml_key: str | None = None
    pdf_path: str | None = None
    xml_path: str | None = None
    vendor_id: str | None = None  # e.g. Netvisor's credit note key
    created: bool


class EmailResult(BaseModel):
    message_id: str
    language: str
    transport: str  # outbox | smtp | mailgun | resend
    location: str | None = None  # outbox file path or vendor message id
    created: bool


class Alert(BaseModel):
    order_id: str | None
    step: str | None
    kind: str  # step_failed | payment_failed | run_crashed | ...
    message: str
    dedupe_key: str  # one alert per key, ever
    occurred_at: datetime | None = None


class Checkable(Protocol):
    name: str

    def check(self) -> None:
        """Verify credentials and reachability without side effects; raise StepError if not ok."""
        ...


class CrmConnector(Checkable, Protocol):
    name: str

    def record_order(self, order: Order) -> CrmResult:
        """Upsert the contact (by email) and create the order's deal once."""
        ...


class ProductionLogConnector(Checkable, Protocol):
    name: str

    def record_order(self, order: Order) -> ProductionLogResult:
        """Create the order's production log entry once."""
        ...

    def update_status(self, order_id: str, status: str) -> None:
        """Set the entry's status field (the completed steps)."""
        ...


class FileStore(Checkable, Protocol):
    name: str

    def put(self, key: str, data: bytes, content_type: str) -> StoredFile:
        """Store bytes under key (overwrite is fine: same key, same content)."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes stored under key; PermanentError when there are none."""
        ...

    def exists(self, key: str) -> bool:
        """Whether something is stored under key (reads no content)."""
        ...

    def link(self, key: str) -> str:
        """Where a person opens the file: a URL (S3: presigned) or a local path."""
        ...


class ShippingConnector(Checkable, Protocol):
    name: str

    def create_shipment(self, order: Order) -> ShipmentResult:
        """Book the shipment and store its PDF label once per order."""
        ...


class InvoicingConnector(Checkable, Protocol):
    name: str

    def create_invoice(self, order: Order) -> InvoiceResult:
        """Issue the order's VAT invoice once (gapless number), its PDF and UBL in the file store."""
        ...


class CreditNoteConnector(Checkable, Protocol):
    name: str

    def issue_credit_note(self, order_id: str, refund_id: str, amount: int, *, language: str = "en",
                          order: Order | None = None) -> CreditNoteResult:
        """Credit ``amount`` (minor units) of the order's invoice once per refund (gapless CN number)."""
        ...


class EmailConnector(Checkable, Protocol):
    name: str

    def send(self, order: Order, message: EmailMessage, *, language: str, variables: dict[str, str]) -> EmailResult:
        """Send the rendered confirmation once per order (variables feed vendor templates)."""
        ...


class AlertSink(Checkable, Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Deliver an ops alert to people (log, Telegram, Slack)."""
        ...


class StatusCallback(Checkable, Protocol):
    def notify(self, payload: dict[str, object]) -> bool:
        """Tell the shop's API about a status change; False when already acknowledged (idempotent)."""
        ...
