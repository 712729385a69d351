"""orderpipe's own tables: the event ledger, order state, and the embedded connectors' data.

Uniqueness that matters for correctness is enforced here, by constraints, never by a
read-then-write: one ledger row per Stripe event, one order row per PaymentIntent, one
deal / production log entry / shipment / invoice / email per order, gapless invoice
numbers per seller and year.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Column, DateTime, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from orderpipe.states import DispatchState, OrderState


def utcnow() -> datetime:
    return datetime.now(UTC)


def _ts(**kw: object) -> Column:  # type: ignore[type-arg]
    return Column(DateTime(timezone=True), **kw)  # type: ignore[arg-type]


class Event(SQLModel, table=True):
    """The ledger: every verified Stripe event, written before the receiver answers 2xx."""

    __tablename__ = "events"
    id: str = Field(primary_key=True, max_length=255)
    type: str = Field(max_length=100, index=True)
    order_id: str | None = Field(default=None, max_length=255, index=True)
    livemode: bool = False
    raw_body: str = Field(sa_column=Column(Text, nullable=False))
    received_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False, index=True))
    status: str = Field(max_length=20)  # an EventStatus
    flow_run_id: str | None = Field(default=None, max_length=64)
    error: str | None = Field(default=None, sa_column=Column(Text))


class OrderRecord(SQLModel, table=True):
    """One row per order (PaymentIntent). Its primary key is what makes a start unique."""

    __tablename__ = "orders"
    order_id: str = Field(primary_key=True, max_length=255)
    first_event_id: str = Field(max_length=255)
    state: str = Field(default=OrderState.RECEIVED, max_length=20, index=True)  # an OrderState
    dispatch: str = Field(default=DispatchState.PENDING, max_length=20, index=True)  # a DispatchState
    flow_run_id: str | None = Field(default=None, max_length=64)
    dispatch_attempts: int = 0
    next_dispatch_at: datetime | None = Field(default=None, sa_column=_ts())
    dispatch_failing_since: datetime | None = Field(default=None, sa_column=_ts())  # first failed start in a row
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    customer_email: str | None = Field(default=None, max_length=320)
    country: str | None = Field(default=None, max_length=2)
    currency: str | None = Field(default=None, max_length=3)
    amount_total: int | None = None
    tracking_number: str | None = Field(default=None, max_length=64)
    invoice_number: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False, index=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class OrderStep(SQLModel, table=True):
    """State of one business step (a Step) of one order (a StepState)."""

    __tablename__ = "order_steps"
    order_id: str = Field(primary_key=True, max_length=255)
    step: str = Field(primary_key=True, max_length=40)
    state: str = Field(max_length=20)
    attempts: int = 0
    error: str | None = Field(default=None, sa_column=Column(Text))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class CrmContact(SQLModel, table=True):
    __tablename__ = "crm_contacts"
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(max_length=320, unique=True)
    name: str | None = Field(default=None, max_length=255)
    phone: str | None = Field(default=None, max_length=64)
    company: str | None = Field(default=None, max_length=255)
    vat_id: str | None = Field(default=None, max_length=64)
    country: str | None = Field(default=None, max_length=2)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class CrmDeal(SQLModel, table=True):
    __tablename__ = "crm_deals"
    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(max_length=255, unique=True)
    contact_id: int = Field(foreign_key="crm_contacts.id", index=True)
    title: str = Field(max_length=255)
    stage: str = Field(max_length=40)
    currency: str = Field(max_length=3)
    amount_total: int
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class ProductionLogEntry(SQLModel, table=True):
    __tablename__ = "production_log"
    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(max_length=255, unique=True)
    customer: str | None = Field(default=None, max_length=255)
    country: str | None = Field(default=None, max_length=2)
    items: str = Field(sa_column=Column(Text, nullable=False))
    status: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class Shipment(SQLModel, table=True):
    """Embedded shipping: the row id is the S10 serial number of the tracking number."""

    __tablename__ = "shipments"
    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(max_length=255, unique=True)
    tracking_number: str | None = Field(default=None, max_length=64, unique=True)
    carrier: str = Field(max_length=40)
    label_key: str | None = Field(default=None, max_length=512)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class InvoiceCounter(SQLModel, table=True):
    """Last issued invoice sequence per seller and year (gapless numbering)."""

    __tablename__ = "invoice_counters"
    seller_id: str = Field(primary_key=True, max_length=64)
    year: int = Field(primary_key=True)
    last_seq: int = 0


class Invoice(SQLModel, table=True):
    """One invoice per order. Numbers run per seller (VAT id) and year: unique per seller."""

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("seller_id", "year", "seq", name="uq_invoices_seller_year_seq"),
        UniqueConstraint("seller_id", "number", name="uq_invoices_seller_number"),
    )
    id: int | None = Field(default=None, primary_key=True)
    order_id: str = Field(max_length=255, unique=True)
    seller_id: str = Field(max_length=64)
    year: int
    seq: int
    number: str = Field(max_length=64)
    issue_date: str = Field(max_length=10)
    currency: str = Field(max_length=3)
    amount_total: int
    amount_tax: int
    vendor_id: str | None = Field(default=None, max_length=64)
    # The invoice as issued (orderpipe.invoicing.document.InvoiceDocument JSON): what credit notes credit.
    document: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class CreditNoteCounter(SQLModel, table=True):
    """Last issued credit note sequence per seller and year (gapless, separate from invoices)."""

    __tablename__ = "credit_note_counters"
    seller_id: str = Field(primary_key=True, max_length=64)
    year: int = Field(primary_key=True)
    last_seq: int = 0


class CreditNoteRecord(SQLModel, table=True):
    """One credit note per Stripe refund (``refund_id``), against the order's invoice."""

    __tablename__ = "credit_notes"
    __table_args__ = (
        UniqueConstraint("seller_id", "year", "seq", name="uq_credit_notes_seller_year_seq"),
        UniqueConstraint("seller_id", "number", name="uq_credit_notes_seller_number"),
    )
    id: int | None = Field(default=None, primary_key=True)
    refund_id: str = Field(max_length=255, unique=True)
    order_id: str = Field(max_length=255, index=True)
    invoice_number: str = Field(max_length=64)
    seller_id: str = Field(max_length=64)
    year: int
    seq: int
    number: str = Field(max_length=64)
    issue_date: str = Field(max_length=10)
    currency: str = Field(max_length=3)
    amount_total: int
    amount_tax: int
    parts: str = Field(sa_column=Column(Text, nullable=False))  # JSON list of invoicing.credit_note.RefundPart
    document: str = Field(sa_column=Column(Text, nullable=False))  # the credit note InvoiceDocument JSON
    vendor_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class EmailSent(SQLModel, table=True):
    __tablename__ = "emails"
    order_id: str = Field(primary_key=True, max_length=255)
    message_id: str = Field(max_length=255)
    language: str = Field(max_length=16)
    transport: str = Field(max_length=20)
    location: str | None = Field(default=None, max_length=1024)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class AlertRecord(SQLModel, table=True):
    __tablename__ = "alerts"
    id: int | None = Field(default=None, primary_key=True)
    dedupe_key: str = Field(max_length=255, unique=True)
    order_id: str | None = Field(default=None, max_length=255, index=True)
    step: str | None = Field(default=None, max_length=40)
    kind: str = Field(max_length=40)
    message: str = Field(sa_column=Column(Text, nullable=False))
    delivered: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class VendorToken(SQLModel, table=True):
    """Cached OAuth access tokens (Zoho), shared by every process."""

    __tablename__ = "vendor_tokens"
    name: str = Field(primary_key=True, max_length=64)
    access_token: str = Field(sa_column=Column(Text, nullable=False))
    expires_at: datetime = Field(sa_column=_ts(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class CallbackSent(SQLModel, table=True):
    """Status callbacks the shop acknowledged (one per order and status)."""

    __tablename__ = "status_callbacks"
    order_id: str = Field(primary_key=True, max_length=255)
    status: str = Field(primary_key=True, max_length=20)
    sent_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class RunLease(SQLModel, table=True):
    """Which worker process is executing a flow run right now, and when it last said so.

    Written before the run is claimed in Prefect and refreshed every few seconds while its
    child process lives; a lease whose heartbeat stopped marks a run nobody executes any
    more (killed worker, lost machine), which any worker's watchdog then re-drives."""

    __tablename__ = "run_leases"
    flow_run_id: str = Field(primary_key=True, max_length=64)
    order_id: str | None = Field(default=None, max_length=255, index=True)
    worker: str = Field(max_length=255, index=True)
    pid: int | None = None
    claimed_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    heartbeat_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False, index=True))


class PostNordBooking(SQLModel, table=True):
    """The PostNord booking journal: what PostNord answered for an order, written the moment
    it answered and read before every booking, so a replay on any machine books nothing twice.

    ``label_b64`` is empty for a booking whose label was missing; a later call fetches the
    label by ``item_id`` and fills it in."""

    __tablename__ = "postnord_bookings"
    order_id: str = Field(primary_key=True, max_length=255)
    item_id: str = Field(max_length=64)
    tracking_url: str = Field(sa_column=Column(Text, nullable=False))
    booking_id: str | None = Field(default=None, max_length=255)
    label_b64: str | None = Field(default=None, sa_column=Column(Text))
    booked_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class VendorAttempt(SQLModel, table=True):
    """A non-idempotent vendor write in flight: committed before the request is sent and
    removed in the transaction that records its answer (or when the vendor definitely
    refused). A row left behind means the outcome is unknown (answer lost, process killed,
    or the answer could not be recorded): the write is never repeated without asking the
    vendor, or a person where the vendor offers no lookup."""

    __tablename__ = "vendor_attempts"
    order_id: str = Field(primary_key=True, max_length=255)
    step: str = Field(primary_key=True, max_length=40)
    vendor: str = Field(max_length=40)
    reference: str = Field(max_length=255)  # our reference the vendor can be searched by
    started_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    detail: str | None = Field(default=None, sa_column=Column(Text))


class RefundRecord(SQLModel, table=True):
    """One row per Stripe refund (``re_...``), or per lost dispute (``du_...``) credited like one.

    Its primary key is what makes a refund's one run unique, however many events name it;
    ``dispatch`` works as for orders (pending -> started). ``state``: received | running |
    completed | failed | needs_attention (unknown order, refund larger than what is left)
    | not_credited (the refund failed or was cancelled, or the order was never invoiced)."""

    __tablename__ = "refunds"
    refund_id: str = Field(primary_key=True, max_length=255)
    kind: str = Field(default="refund", max_length=20)  # refund | dispute
    order_id: str | None = Field(default=None, max_length=255, index=True)
    charge_id: str | None = Field(default=None, max_length=255)
    first_event_id: str = Field(max_length=255)
    state: str = Field(default="received", max_length=20, index=True)
    dispatch: str = Field(default="pending", max_length=20, index=True)  # pending | started
    flow_run_id: str | None = Field(default=None, max_length=64)
    dispatch_attempts: int = 0
    next_dispatch_at: datetime | None = Field(default=None, sa_column=_ts())
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    amount: int | None = None  # as read back from Stripe
    currency: str | None = Field(default=None, max_length=3)
    stripe_status: str | None = Field(default=None, max_length=40)
    credit_note_number: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False, index=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class RefundScan(SQLModel, table=True):
    """A PaymentIntent whose refunds must be listed from Stripe (``charge.refunded``: the
    receiver does no vendor I/O and never trusts the body's list); the dispatcher lists them."""

    __tablename__ = "refund_scans"
    order_id: str = Field(primary_key=True, max_length=255)
    charge_id: str | None = Field(default=None, max_length=255)
    pending: bool = True
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    requested_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class DisputeRecord(SQLModel, table=True):
    """One row per Stripe dispute (``du_...``); a closed status is never overwritten by an older event."""

    __tablename__ = "disputes"
    dispute_id: str = Field(primary_key=True, max_length=255)
    order_id: str | None = Field(default=None, max_length=255, index=True)
    charge_id: str | None = Field(default=None, max_length=255)
    amount: int | None = None
    currency: str | None = Field(default=None, max_length=3)
    reason: str | None = Field(default=None, max_length=64)
    status: str = Field(max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))


class ErasurePending(SQLModel, table=True):
    """An order whose personal data ``orderpipe forget`` erased from the database but not yet
    from ``part`` (``s3``: labels and cached results in the bucket; ``prefect``: the order's
    artifacts on the Prefect server). Written in the transaction that erases the database
    rows (after it nothing links the email to the order any more) and removed when that part
    is done, so a run that could not reach S3 or Prefect is finished by the next ``forget`` or
    ``purge``. Holds the order id only."""

    __tablename__ = "erasures_pending"
    order_id: str = Field(primary_key=True, max_length=255)
    part: str = Field(primary_key=True, max_length=20)
    requested_at: datetime = Field(default_factory=utcnow, sa_column=_ts(nullable=False))
    last_error: str | None = Field(default=None, sa_column=Column(Text))
