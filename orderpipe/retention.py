"""Retention: ``orderpipe purge --older-than 90d`` and ``orderpipe forget EMAIL``.

What orderpipe keeps, and for how long:

- Invoices and credit notes (``invoices`` table, ``invoices/<number>.pdf|.xml``): never
  removed by either command. Finnish Accounting Act (Kirjanpitolaki 1336/1997, 2:10 §):
  vouchers such as sales invoices are kept 6 years from the end of the financial year.
- Event ids, order ids and step states stay (without them a redelivered webhook would be
  fulfilled again); what goes is the personal data around them.

``purge`` removes, for everything older than the cutoff: raw webhook bodies (names,
addresses, emails), label PDFs inside the PostNord journal and as files, outbox copies of
emails, and Prefect results whose cache has expired (``CACHE_EXPIRY``) — a result still
inside its cache lifetime is what makes a replay skip a completed step, so it is kept.

``forget`` erases one customer (by email) from orderpipe's database and files, whatever
their age, except the invoices and credit notes, and reports what it kept and why.
Files in S3 (``ORDERPIPE_FILE_STORE=s3``) and Prefect artifacts on the server are reported,
not removed, by this version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, select, update
from sqlmodel import Session

from orderpipe.db import session_scope
from orderpipe.prefect_env import prefect_home
from orderpipe.settings import Settings
from orderpipe.tables import (
    CrmContact,
    CrmDeal,
    Event,
    Invoice,
    OrderRecord,
    PostNordBooking,
    ProductionLogEntry,
)

#: The cached steps' cache_expiration (tasks/step_policy.py CACHED_STEP).
CACHE_EXPIRY = timedelta(days=90)
PURGED_BODY = json.dumps({"purged": "personal data removed by orderpipe retention"})
ACCOUNTING_REASON = ("Finnish Accounting Act 2:10 §: invoices and credit notes are kept 6 years from the end of "
                     "the financial year")


@dataclass
class Report:
    removed: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [f"removed: {r}" for r in self.removed] + [f"kept:    {k}" for k in self.kept]


def _old_files(folder: Path, cutoff: datetime, pattern: str = "*") -> list[Path]:
    if not folder.is_dir():
        return []
    ts = cutoff.timestamp()
    return [p for p in folder.glob(pattern) if p.is_file() and p.stat().st_mtime < ts]


def _unlink(paths: list[Path]) -> int:
    n = 0
    for p in paths:
        try:
            p.unlink()
            n += 1
        except FileNotFoundError:
            pass
    return n


def _results_dir(settings: Settings) -> Path:
    return prefect_home(settings) / "storage"


def purge(settings: Settings, engine: Engine, older_than: timedelta, *, now: datetime | None = None) -> Report:
    now = now or datetime.now(UTC)
    cutoff = now - older_than
    report = Report()
    with session_scope(engine) as s:
        n = s.execute(update(Event).where(Event.received_at < cutoff).where(Event.raw_body != PURGED_BODY)
                      .values(raw_body=PURGED_BODY)).rowcount
        report.removed.append(f"{n} raw webhook bodies received before {cutoff:%Y-%m-%d}")
        n = s.execute(update(PostNordBooking).where(PostNordBooking.booked_at < cutoff)
                      .where(PostNordBooking.label_b64.is_not(None))  # type: ignore[union-attr]
                      .values(label_b64=None)).rowcount
        report.removed.append(f"{n} label PDFs inside the PostNord booking journal")
    data = settings.data_dir
    report.removed.append(f"{_unlink(_old_files(data / 'labels', cutoff, '*.pdf'))} label files (labels/)")
    report.removed.append(f"{_unlink(_old_files(data / 'outbox', cutoff, '*.eml'))} outbox copies (outbox/)")
    results_cutoff = min(cutoff, now - CACHE_EXPIRY)
    report.removed.append(f"{_unlink(_old_files(_results_dir(settings), results_cutoff))} Prefect results past "
                          f"their cache expiry (older than {results_cutoff:%Y-%m-%d})")
    with Session(engine) as s:
        invoices = s.scalar(select(func.count()).select_from(Invoice)) or 0
    report.kept.append(f"{invoices} invoices and every credit note, with their PDF/XML files ({ACCOUNTING_REASON})")
    report.kept.append("event ids, order ids and step states (they stop a redelivered webhook from being "
                       "fulfilled twice); no personal data in them")
    if older_than < CACHE_EXPIRY:
        report.kept.append(f"Prefect results younger than their {CACHE_EXPIRY.days}-day cache expiry (a replay "
                           "skips completed steps by them)")
    if settings.orderpipe_file_store == "s3":
        report.kept.append("labels in S3: remove them with a bucket lifecycle rule on ORDERPIPE_S3_PREFIX")
    return report


def forget(settings: Settings, engine: Engine, email: str) -> Report:
    report = Report()
    address = email.strip().lower()
    with session_scope(engine) as s:
        orders = list(s.scalars(select(OrderRecord.order_id)
                                .where(func.lower(OrderRecord.customer_email) == address)).all())
        contacts = list(s.scalars(select(CrmContact).where(func.lower(CrmContact.email) == address)).all())
        contact_ids = [c.id for c in contacts]
        if contact_ids:
            orders += [o for o in s.scalars(select(CrmDeal.order_id)
                                            .where(CrmDeal.contact_id.in_(contact_ids))).all()  # type: ignore[union-attr]
                       if o not in orders]
        for c in contacts:  # the deal rows refer to the contact: it stays, anonymised
            c.email, c.name, c.phone, c.company, c.vat_id = f"forgotten-{c.id}@erased.invalid", None, None, None, None
            s.add(c)
        report.removed.append(f"{len(contacts)} CRM contacts (name, email, phone, company, VAT id)")
        if orders:
            n = s.execute(update(Event).where(Event.order_id.in_(orders))  # type: ignore[union-attr]
                          .values(raw_body=PURGED_BODY)).rowcount
            report.removed.append(f"{n} raw webhook bodies")
            s.execute(update(OrderRecord).where(OrderRecord.order_id.in_(orders))  # type: ignore[attr-defined]
                      .values(customer_email=None))
            s.execute(update(ProductionLogEntry).where(ProductionLogEntry.order_id.in_(orders))  # type: ignore[attr-defined]
                      .values(customer=None))
            n = s.execute(update(PostNordBooking).where(PostNordBooking.order_id.in_(orders))  # type: ignore[attr-defined]
                          .values(label_b64=None)).rowcount
            report.removed.append(f"customer email of {len(orders)} orders ({', '.join(orders)}), production log "
                                  f"names, {n} journalled labels")
        numbers = list(s.scalars(select(Invoice.number).where(Invoice.order_id.in_(orders))).all()) if orders \
            else []  # type: ignore[attr-defined]
    data = settings.data_dir
    files = [data / "labels" / f"{o}.pdf" for o in orders] + [data / "outbox" / f"{o}.eml" for o in orders]
    results = _results_dir(settings)
    if results.is_dir():
        files += [p for o in orders for p in results.glob(f"*-order-{o}")]
    report.removed.append(f"{_unlink(files)} files (labels, outbox copies, cached step results)")
    if numbers:
        report.kept.append(f"invoices and credit notes {', '.join(numbers)} with the buyer's name and address "
                           f"({ACCOUNTING_REASON})")
    if orders:
        report.kept.append("order ids, amounts and step states of those orders (no personal data)")
        report.kept.append("Prefect artifacts order-<id> on the Prefect server: delete them in the UI "
                           "(Artifacts), they show the customer's name and email")
    if settings.orderpipe_file_store == "s3":
        report.kept.append("labels in S3: delete <ORDERPIPE_S3_PREFIX><order id>.pdf for the orders above")
    return report
