"""Retention: ``orderpipe purge --older-than 90d`` and ``orderpipe forget EMAIL``.

What orderpipe keeps, and for how long:

- Invoices and credit notes (``invoices`` table, ``invoices/<number>.pdf|.xml`` on disk or
  under ``ORDERPIPE_S3_INVOICE_PREFIX`` in S3): never removed by either command. Finnish
  Accounting Act (Kirjanpitolaki 1336/1997, 2:10 §): vouchers such as sales invoices are kept
  6 years from the end of the financial year. In S3 an object directly under the invoice
  prefix named like an invoice or credit note (``2026-000001.pdf``, ``CN-2026-000001.xml``)
  is never deleted, even when the label and invoice prefixes are equal or nested.
- Event ids, order ids and step states stay (without them a redelivered webhook would be
  fulfilled again); what goes is the personal data around them.

``purge`` removes, for everything older than the cutoff:

- database: raw webhook bodies (names, addresses, emails) and the label PDFs inside the
  PostNord booking journal;
- files: label PDFs (``labels/``; with ``ORDERPIPE_FILE_STORE=s3`` the label objects
  ``<ORDERPIPE_S3_PREFIX>pi_....pdf`` whose LastModified is older) and outbox copies;
- Prefect results whose cache has expired (older than min(cutoff, now - ``CACHE_EXPIRY``)):
  ``$PREFECT_HOME/storage`` locally, ``prefect-results/`` in the bucket with S3. A result
  still inside its cache lifetime is what makes a replay skip a completed step, so it is kept;
- Prefect artifacts created before the cutoff with keys ``order-...`` (the order's summary
  and its steps table): rewritten, not deleted (below).

``forget`` erases one customer (by email), whatever the age: the CRM contact (anonymised, the
deals refer to it), the orders' email, production-log names, webhook bodies, journalled
labels, label files and outbox copies, cached step results (``*-order-<id>``, locally and in
``prefect-results/``), the S3 labels ``<ORDERPIPE_S3_PREFIX><order id>.pdf``, and the
personal data in the orders' Prefect artifacts; it keeps the invoices and credit notes and
says so.

Prefect artifacts (``order-<id>``: the summary, ``order-<id>-steps``: the steps table) are
the run's audit trail, so every version of them is rewritten in place (``PATCH
/api/artifacts/{id}``), never deleted: the ``**Customer:**`` line (name, email, business name)
becomes "(erased by orderpipe forget|purge on <date>)", the steps table's email outcome of
older runs ("confirmation sent to <email>") names "the customer", quoted VAT ids and emails
in notes and errors, and every occurrence of the customer's values (email, names, business
name, phone, street lines, VAT id: from the orders, CRM contact, production log, webhook
bodies and the kept invoices), raw or as the artifact's ``md()`` escaped them, become
"(erased)". Order ids, amounts, tracking and invoice numbers and step states stay. The steps
tables are included: runs before this version logged, and tabled, the email step's outcome
with the customer's address.

When S3 or the Prefect API cannot be reached (no server at ``PREFECT_API_URL``, refused
credentials, S3 errors), the command still does everything else, exits 0 and prints a
``kept:`` line saying what could not be erased and why. ``forget`` records the orders in
``erasures_pending`` in the same transaction that erases the database rows (afterwards
nothing links the email to them), and the next ``forget`` or ``purge`` finishes them;
``purge`` works by age, so running it again is enough.

Prefect flow-run logs: Prefect has no API to delete log lines, so rather than deleting them
orderpipe keeps personal data out of them. Its business log lines (orderpipe/audit.py) name
ids, amounts and numbers, never the customer's name, email or address: the email step's
outcome says "confirmation sent to the customer" (it named the address before), the invalid-
email errors of the confirmation and credit-note emails no longer quote it, and an SMTP
refusal leaves the recipient out. A vendor's own error text is logged as the vendor sent it.
Runs logged by earlier versions name the customer's email in the email step's line; those
lines go only with their flow run (Prefect's database vacuum,
``PREFECT_SERVER_SERVICES_DB_VACUUM_ENABLED=events,flow_runs``, which removes the audit trail
too), so both commands report them as kept.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import Engine, delete, func, select, update
from sqlmodel import Session

from orderpipe.artifact import artifact_key, erasure_note, redact_artifact_data, redaction_forms, steps_table_key
from orderpipe.db import session_scope
from orderpipe.errors import StepError
from orderpipe.prefect_env import api_url, prefect_home
from orderpipe.result_storage import RESULTS_FOLDER
from orderpipe.settings import Settings
from orderpipe.tables import (
    CreditNoteRecord,
    CrmContact,
    CrmDeal,
    ErasurePending,
    Event,
    Invoice,
    OrderRecord,
    PostNordBooking,
    ProductionLogEntry,
)

if TYPE_CHECKING:
    from orderpipe.connectors.file_store_s3 import S3FileStore
    from orderpipe.prefect_artifacts import ArtifactVersion, PrefectArtifacts

#: The cached steps' cache_expiration (tasks/step_policy.py CACHED_STEP).
CACHE_EXPIRY = timedelta(days=90)
PURGED_BODY = json.dumps({"purged": "personal data removed by orderpipe retention"})
ACCOUNTING_REASON = ("Finnish Accounting Act 2:10 §: invoices and credit notes are kept 6 years from the end of "
                     "the financial year")
PART_S3 = "s3"  # ErasurePending.part: labels and cached results in the bucket
PART_PREFECT = "prefect"  # ErasurePending.part: the order's artifacts on the Prefect server
ORDER_ARTIFACTS = "order-"  # how artifact_key and steps_table_key begin
ERASED_DOMAIN = "@erased.invalid"  # the anonymised CRM contact's address
BATCH = 200
#: What a call to the Prefect API may raise: StepError (vendor_http), a body that is not the
#: expected JSON, a malformed PREFECT_API_URL.
PREFECT_ERRORS = (StepError, ValueError, KeyError, httpx.HTTPError, httpx.InvalidURL)
LOGS_KEPT = ("Prefect flow-run logs: orderpipe logs ids, amounts and numbers, not the customer's name, email or "
             "address; runs logged by earlier versions name the customer's email in the email step's line, and "
             "Prefect cannot delete log lines (they go with the flow run, the audit trail)")


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


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


# ---- the customer's values, to find them in the artifacts -------------------------------

def _add(into: set[str], *values: object) -> None:
    for value in values:
        if isinstance(value, str) and value.strip() and not value.endswith(ERASED_DOMAIN):
            into.add(value.strip())


def _body_values(raw_body: str, into: set[str]) -> None:
    """Receipt email, names, phones and street lines of a webhook body's object."""
    try:
        obj = json.loads(raw_body).get("data", {}).get("object", {})
    except (ValueError, AttributeError):
        return
    if not isinstance(obj, dict):
        return
    _add(into, obj.get("receipt_email"))
    for part in ("shipping", "customer_details", "billing_details"):
        who = obj.get(part)
        if isinstance(who, dict):
            _add(into, who.get("name"), who.get("email"), who.get("phone"))
            address = who.get("address")
            if isinstance(address, dict):
                _add(into, address.get("line1"), address.get("line2"))


def _document_values(document: str | None, into: set[str]) -> None:
    """The buyer (name, street lines, VAT id, email) and the delivery name and street of an
    invoice or credit note document (kept by law, so still there after ``forget``)."""
    try:
        doc = json.loads(document or "null")
    except ValueError:
        return
    if not isinstance(doc, dict):
        return
    buyer, delivery = doc.get("buyer"), doc.get("delivery")
    if isinstance(buyer, dict):
        _add(into, buyer.get("name"), buyer.get("street"), buyer.get("street2"), buyer.get("vat_id"),
             buyer.get("email"))
    if isinstance(delivery, dict):
        _add(into, delivery.get("name"), delivery.get("line1"), delivery.get("line2"))


def customer_values(s: Session, order_ids: list[str]) -> dict[str, set[str]]:
    """For each order: the customer's email, names, business name, phone, street lines and VAT
    id, from whatever orderpipe's database still holds of them."""
    values: dict[str, set[str]] = {o: set() for o in order_ids}
    for start in range(0, len(order_ids), BATCH):
        ids = order_ids[start:start + BATCH]
        for o, email in s.execute(select(OrderRecord.order_id, OrderRecord.customer_email)
                                  .where(OrderRecord.order_id.in_(ids))):  # type: ignore[attr-defined]
            _add(values[o], email)
        for o, c in s.execute(select(CrmDeal.order_id, CrmContact).join(CrmContact, CrmDeal.contact_id == CrmContact.id)
                              .where(CrmDeal.order_id.in_(ids))):  # type: ignore[attr-defined]
            _add(values[o], c.email, c.name, c.phone, c.company, c.vat_id)
        for o, name in s.execute(select(ProductionLogEntry.order_id, ProductionLogEntry.customer)
                                 .where(ProductionLogEntry.order_id.in_(ids))):  # type: ignore[attr-defined]
            _add(values[o], name)
        for o, body in s.execute(select(Event.order_id, Event.raw_body).where(Event.order_id.in_(ids))  # type: ignore[union-attr]
                                 .where(Event.raw_body != PURGED_BODY)):
            _body_values(body, values[o])
        for o, doc in s.execute(select(Invoice.order_id, Invoice.document)
                                .where(Invoice.order_id.in_(ids))):  # type: ignore[attr-defined]
            _document_values(doc, values[o])
        for o, doc in s.execute(select(CreditNoteRecord.order_id, CreditNoteRecord.document)
                                .where(CreditNoteRecord.order_id.in_(ids))):  # type: ignore[attr-defined]
            _document_values(doc, values[o])
    return values


# ---- S3 ----------------------------------------------------------------------------------

def _s3(settings: Settings) -> S3FileStore:
    from orderpipe.connectors.file_store_s3 import S3FileStore

    return S3FileStore(settings)


def _purge_s3(store: S3FileStore, cutoff: datetime, results_cutoff: datetime) -> tuple[int, int]:
    """Label objects older than ``cutoff`` and Prefect results older than ``results_cutoff``."""
    labels = [o.key for o in store.list_objects(store.prefix)
              if o.last_modified < cutoff and store.is_label_object(o.key)]
    results = [o.key for o in store.list_objects(RESULTS_FOLDER)
               if o.last_modified < results_cutoff and not store.is_invoice_object(o.key)]
    return store.delete_objects(labels), store.delete_objects(results)


def _forget_s3(store: S3FileStore, orders: list[str]) -> tuple[int, int]:
    """The orders' label objects and their cached step results (``...-order-<id>``)."""
    labels = []
    for o in orders:
        key = store.label_object_key(o)
        if store.is_label_object(key) and any(obj.key == key for obj in store.list_objects(key)):
            labels.append(key)
    suffixes = tuple(f"-order-{o}" for o in orders)
    results = [obj.key for obj in store.list_objects(RESULTS_FOLDER)
               if obj.key.endswith(suffixes) and not store.is_invoice_object(obj.key)]
    return store.delete_objects(labels), store.delete_objects(results)


# ---- Prefect artifacts -------------------------------------------------------------------

@contextmanager
def _prefect(settings: Settings, given: PrefectArtifacts | None) -> Iterator[PrefectArtifacts]:
    if given is not None:
        yield given
        return
    from orderpipe.prefect_artifacts import PrefectArtifacts

    with PrefectArtifacts.from_settings(settings) as client:
        yield client


def _order_key(key: str) -> str:
    return key.removesuffix("-steps")


@dataclass
class _Rewrites:
    rewritten: int = 0
    seen: int = 0


def _rewrite(prefect: PrefectArtifacts, versions: list[ArtifactVersion], forms_of: dict[str, list[str]],
             note: str, done: _Rewrites) -> None:
    """Rewrite each version whose data changes without the customer; ``forms_of`` maps an
    order's artifact key to the strings to erase."""
    for v in versions:
        done.seen += 1
        data = redact_artifact_data(v.data, forms_of.get(_order_key(v.key or ""), []), note)
        if data != v.data:
            prefect.set_data(v.id, data)
            done.rewritten += 1


def _forms_by_key(values: dict[str, set[str]]) -> dict[str, list[str]]:
    by_key: dict[str, set[str]] = defaultdict(set)
    for order_id, vals in values.items():
        by_key[artifact_key(order_id)] |= vals
    return {k: redaction_forms(v) for k, v in by_key.items()}


def _forget_artifacts(prefect: PrefectArtifacts, values: dict[str, set[str]], note: str) -> _Rewrites:
    """Every version of the orders' ``order-<id>`` and ``order-<id>-steps`` artifacts."""
    keys = [k for o in values for k in (artifact_key(o), steps_table_key(o))]
    done = _Rewrites()
    _rewrite(prefect, list(prefect.versions(keys)), _forms_by_key(values), note, done)
    return done


def _purge_artifacts(prefect: PrefectArtifacts, engine: Engine, cutoff: datetime, note: str) -> _Rewrites:
    """Every version of an ``order-...`` artifact created before ``cutoff``, a batch at a time."""
    with Session(engine) as s:
        order_of = {artifact_key(o): o for o in s.scalars(select(OrderRecord.order_id)).all()}
    done = _Rewrites()

    def flush(batch: list[ArtifactVersion]) -> None:
        orders = sorted({order_of[k] for v in batch if (k := _order_key(v.key or "")) in order_of})
        with Session(engine) as s:
            forms_of = _forms_by_key(customer_values(s, orders))
        _rewrite(prefect, batch, forms_of, note, done)

    batch: list[ArtifactVersion] = []
    for v in prefect.versions_containing(ORDER_ARTIFACTS):
        if v.created >= cutoff or not (v.key or "").startswith(ORDER_ARTIFACTS):
            continue
        batch.append(v)
        if len(batch) >= BATCH:
            flush(batch)
            batch = []
    if batch:
        flush(batch)
    return done


def _rewritten_line(done: _Rewrites, what: str) -> str:
    return (f"{done.rewritten} of {done.seen} Prefect artifact versions {what} rewritten without the customer's "
            "name, email, business name, address and VAT id (the others had none left); order ids, amounts, "
            "tracking and invoice numbers and step states stay")


# ---- erasures recorded by forget ---------------------------------------------------------

def _pending(engine: Engine) -> dict[str, list[str]]:
    with Session(engine) as s:
        rows = s.execute(select(ErasurePending.part, ErasurePending.order_id)
                         .order_by(ErasurePending.order_id)).all()  # type: ignore[arg-type]
    by_part: dict[str, list[str]] = defaultdict(list)
    for part, order_id in rows:
        by_part[part].append(order_id)
    return by_part


def _settle(engine: Engine, part: str, orders: list[str], error: BaseException | None) -> None:
    """Done: the rows go. Failed: the rows stay, with the reason."""
    with session_scope(engine) as s:
        for start in range(0, len(orders), BATCH):
            ids = orders[start:start + BATCH]
            where = (ErasurePending.part == part, ErasurePending.order_id.in_(ids))  # type: ignore[attr-defined]
            if error is None:
                s.execute(delete(ErasurePending).where(*where))
            else:
                s.execute(update(ErasurePending).where(*where).values(last_error=_short(error)))


def _finish_erasures(settings: Settings, engine: Engine, report: Report, known: dict[str, set[str]],
                     now: datetime, prefect: PrefectArtifacts | None, *,
                     unreachable: BaseException | None = None) -> None:
    """Erase what ``forget`` recorded (this run's orders and any an earlier run left) from S3
    and from the Prefect artifacts; ``known`` holds values read before the database erasure.
    ``unreachable``: the Prefect API already failed in this run (not asked again)."""
    pending = _pending(engine)
    orders = pending.get(PART_S3, [])
    if orders and settings.orderpipe_file_store != "s3":
        report.kept.append(f"S3 labels and cached results of {len(orders)} forgotten orders ({', '.join(orders)}): "
                           "ORDERPIPE_FILE_STORE is not s3 now; run `orderpipe forget` again with the S3 settings")
    elif orders:
        try:
            labels, results = _forget_s3(_s3(settings), orders)
        except StepError as exc:
            _settle(engine, PART_S3, orders, exc)
            report.kept.append(f"NOT ERASED YET: the S3 labels and cached results of orders {', '.join(orders)} "
                               f"({_short(exc)}); recorded, the next `orderpipe forget` or `orderpipe purge` "
                               "deletes them")
        else:
            _settle(engine, PART_S3, orders, None)
            report.removed.append(f"{labels} label objects and {results} cached step results in S3 "
                                  f"(s3://{settings.orderpipe_s3_bucket}/{RESULTS_FOLDER})")
    orders = pending.get(PART_PREFECT, [])
    if not orders:
        return
    with Session(engine) as s:
        values = customer_values(s, orders)
    for o in orders:
        values[o] |= known.get(o, set())
    try:
        if unreachable is not None:
            raise unreachable
        with _prefect(settings, prefect) as client:
            done = _forget_artifacts(client, values, erasure_note("forget", now))
    except PREFECT_ERRORS as exc:
        _settle(engine, PART_PREFECT, orders, exc)
        report.kept.append(f"NOT ERASED YET: the Prefect artifacts order-<id> and order-<id>-steps of orders "
                           f"{', '.join(orders)} still show the customer: the Prefect API at {api_url(settings)} "
                           f"could not be reached or refused ({_short(exc)}); recorded, run `orderpipe forget` "
                           "(any email) or `orderpipe purge` again once it answers")
    else:
        _settle(engine, PART_PREFECT, orders, None)
        report.removed.append(_rewritten_line(done, f"of {len(orders)} orders"))


# ---- the commands ------------------------------------------------------------------------

def purge(settings: Settings, engine: Engine, older_than: timedelta, *, now: datetime | None = None,
          prefect: PrefectArtifacts | None = None) -> Report:
    now = now or datetime.now(UTC)
    cutoff = now - older_than
    results_cutoff = min(cutoff, now - CACHE_EXPIRY)
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
    report.removed.append(f"{_unlink(_old_files(_results_dir(settings), results_cutoff))} Prefect results past "
                          f"their cache expiry (older than {results_cutoff:%Y-%m-%d})")
    if settings.orderpipe_file_store == "s3":
        where = f"s3://{settings.orderpipe_s3_bucket}"
        try:
            labels, results = _purge_s3(_s3(settings), cutoff, results_cutoff)
        except StepError as exc:
            report.kept.append(f"NOT PURGED: S3 labels and Prefect results in {where} ({_short(exc)}); "
                               "run `orderpipe purge` again")
        else:
            report.removed.append(f"{labels} label objects in {where}/{settings.orderpipe_s3_prefix} and {results} "
                                  f"Prefect results in {where}/{RESULTS_FOLDER} (same cutoffs)")
    prefect_error: BaseException | None = None
    try:
        with _prefect(settings, prefect) as client:
            done = _purge_artifacts(client, engine, cutoff, erasure_note("purge", now))
    except PREFECT_ERRORS as exc:
        prefect_error = exc
        report.kept.append(f"NOT PURGED: Prefect artifacts order-... created before {cutoff:%Y-%m-%d} still show "
                           f"customers: the Prefect API at {api_url(settings)} could not be reached or refused "
                           f"({_short(exc)}); run `orderpipe purge` again once it answers")
    else:
        report.removed.append(_rewritten_line(done, f"created before {cutoff:%Y-%m-%d}"))
    _finish_erasures(settings, engine, report, {}, now, prefect, unreachable=prefect_error)
    with Session(engine) as s:
        invoices = s.scalar(select(func.count()).select_from(Invoice)) or 0
    report.kept.append(f"{invoices} invoices and every credit note, with their PDF/XML files ({ACCOUNTING_REASON})")
    report.kept.append("event ids, order ids and step states (they stop a redelivered webhook from being "
                       "fulfilled twice); no personal data in them")
    if older_than < CACHE_EXPIRY:
        report.kept.append(f"Prefect results younger than their {CACHE_EXPIRY.days}-day cache expiry (a replay "
                           "skips completed steps by them)")
    report.kept.append(LOGS_KEPT)
    return report


def forget(settings: Settings, engine: Engine, email: str, *, now: datetime | None = None,
           prefect: PrefectArtifacts | None = None) -> Report:
    now = now or datetime.now(UTC)
    report = Report()
    address = email.strip().lower()
    parts = [PART_PREFECT] + ([PART_S3] if settings.orderpipe_file_store == "s3" else [])
    with session_scope(engine) as s:
        orders = list(s.scalars(select(OrderRecord.order_id)
                                .where(func.lower(OrderRecord.customer_email) == address)).all())
        contacts = list(s.scalars(select(CrmContact).where(func.lower(CrmContact.email) == address)).all())
        contact_ids = [c.id for c in contacts]
        if contact_ids:
            orders += [o for o in s.scalars(select(CrmDeal.order_id)
                                            .where(CrmDeal.contact_id.in_(contact_ids))).all()  # type: ignore[union-attr]
                       if o not in orders]
        known = customer_values(s, orders)  # before they go: to find them in the artifacts
        for o in orders:
            _add(known[o], email)
        for c in contacts:  # the deal rows refer to the contact: it stays, anonymised
            c.email, c.name, c.phone, c.company, c.vat_id = f"forgotten-{c.id}{ERASED_DOMAIN}", None, None, None, None
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
            for o in orders:  # finished below; a run that cannot reach S3 or Prefect leaves them to the next
                for part in parts:
                    s.merge(ErasurePending(order_id=o, part=part, requested_at=now))
        numbers = (list(s.scalars(select(Invoice.number).where(Invoice.order_id.in_(orders))).all())  # type: ignore[attr-defined]
                   if orders else [])
        numbers += (list(s.scalars(select(CreditNoteRecord.number)
                                   .where(CreditNoteRecord.order_id.in_(orders))).all())  # type: ignore[attr-defined]
                    if orders else [])
    data = settings.data_dir
    files = [data / "labels" / f"{o}.pdf" for o in orders] + [data / "outbox" / f"{o}.eml" for o in orders]
    results = _results_dir(settings)
    if results.is_dir():
        files += [p for o in orders for p in results.glob(f"*-order-{o}")]
    report.removed.append(f"{_unlink(files)} files (labels, outbox copies, cached step results)")
    _finish_erasures(settings, engine, report, known, now, prefect)
    if numbers:
        report.kept.append(f"invoices and credit notes {', '.join(numbers)} with the buyer's name and address "
                           f"({ACCOUNTING_REASON})")
    if orders:
        report.kept.append("order ids, amounts and step states of those orders (no personal data)")
        report.kept.append(LOGS_KEPT)
    return report

