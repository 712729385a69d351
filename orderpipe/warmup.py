"""What every order's flow run would otherwise do for the first time in its own process.

The worker forks a child per flow run from one long-lived parent. Whatever the parent has
already imported, loaded or compiled, each child gets for free (shared copy-on-write pages);
whatever it has not, every child does again: measured before this module, a forked child
imported 213 modules (reportlab, the stripe SDK's services, stdnum, xml.sax, ...) and spent
about 0.8 CPU-s on an order whose steps take 0.2 CPU-s in a warm process.

`warm(settings)` builds the configured connectors once (importing their modules) and
renders a sample order's invoice (PDF and UBL), label and confirmation email in memory,
which loads the fonts, the locale data and the templates. Nothing is written anywhere and
nothing is sent. Each part is best effort: a failure here only costs the children time.
"""

from __future__ import annotations

import importlib
import logging
import tempfile
import time
from datetime import date
from pathlib import Path

from orderpipe.settings import Settings

log = logging.getLogger("orderpipe.warmup")

# Imported lazily by libraries on first use (seen in a child's sys.modules after one order).
LAZY_MODULES = (
    "prefect.task_engine", "prefect.task_runners", "prefect.concurrency.sync", "prefect.concurrency.services",
    "prefect.artifacts", "prefect.utilities.visualization", "prefect.transactions", "prefect.results",
    "stripe._payment_intent", "stripe._customer", "stripe._line_item", "stripe._list_object", "stripe._event",
    "stripe._product", "stripe._price", "stripe._tax_rate", "stripe.checkout._session",
    "stripe._payment_intent_service", "stripe._customer_service", "stripe.checkout._session_service",
    "stripe.checkout._session_line_item_service", "stripe._event_service", "stripe._object_classes",
    "stripe._multipart_data_generator", "xml.sax", "xml.sax.saxutils", "email.mime.multipart",
    "email.mime.application", "email.mime.text", "email.generator", "stdnum.eu.vat",
)


def warm(settings: Settings) -> float:
    """Returns the seconds it took."""
    started = time.monotonic()
    for name in LAZY_MODULES:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    for step in (_prefect_models, _connectors, _documents):
        try:
            step(settings)
        except Exception as exc:  # noqa: BLE001 - best effort, see the module docstring
            log.warning("warm-up step %s skipped: %s: %s", step.__name__, type(exc).__name__, exc)
    took = time.monotonic() - started
    log.info("warm-up done in %.2f s", took)
    return took


# Pydantic models a run's engine uses that the worker itself never touches. A model is
# completed (its validator built) on first use, in each child again if not in the parent:
# FlowRunUpdate, ArtifactCreate and LogCreate cost a child about 60 ms of CPU. `State[Any]`
# and `OrchestrationResult[Any]` are built in every state proposal, and Pydantic's cache of
# parametrised generics holds them only weakly: kept here, every child finds them.
_KEEP: list[object] = []


def _prefect_models(_settings: Settings) -> None:
    from typing import Any

    from prefect.client.schemas import OrchestrationResult
    from prefect.states import State

    _KEEP.extend([State[Any], OrchestrationResult[Any]])
    _complete_models("prefect")  # FlowRunUpdate, ArtifactCreate, LogCreate, the events' models...


def _complete_models(package: str) -> int:
    """Complete every Pydantic model of `package` still waiting for its first use (about 270
    of Prefect's, 0.15 CPU-s once here): the events, task-run and artifact models a run's
    engine needs would otherwise each be built in every child. Returns how many."""
    from pydantic import BaseModel
    from pydantic._internal._mock_val_ser import MockValSer

    done, todo = 0, [BaseModel]
    while todo:
        for model in todo.pop().__subclasses__():
            todo.append(model)
            if model.__module__.startswith(package) and isinstance(model.__dict__.get("__pydantic_validator__"),
                                                                   MockValSer):
                try:
                    model.model_rebuild()
                    done += 1
                except Exception:  # noqa: BLE001 - a model that cannot be completed yet is built on use
                    pass
    return done


def _connectors(settings: Settings) -> None:
    from orderpipe.bootstrap import build_services

    svc = build_services(settings)
    client = getattr(svc.stripe, "_client", None)
    if client is not None:  # the SDK imports each service on first attribute access
        v1 = client.v1
        for service in (v1.payment_intents, v1.customers, v1.events, v1.checkout.sessions, v1.refunds,
                        v1.disputes, v1.invoice_payments, v1.balance):
            getattr(service, "line_items", None)
    _stripe_object_classes()
    _vat_number_modules()


# The Stripe objects orderpipe reads (and what they embed when expanded). The SDK imports an
# object's class module when the first such object arrives: `stripe._charge` alone (the
# expanded latest_charge of every order) cost each child about 20 ms.
STRIPE_OBJECTS = ("list", "payment_intent", "charge", "refund", "dispute", "checkout.session", "customer", "item",
                  "product", "price", "tax_rate", "event", "invoice_payment", "balance", "discount", "coupon",
                  "promotion_code", "shipping_rate", "payment_method")


def _vat_number_modules() -> None:
    """python-stdnum imports a country's VAT number module on its first number."""
    from stdnum.eu import vat

    for country in sorted(vat.MEMBER_STATES):
        try:
            vat._get_cc_module(country)
        except (ImportError, AttributeError):
            pass


def _stripe_object_classes() -> None:
    from stripe._object_classes import OBJECT_CLASSES

    for name in STRIPE_OBJECTS:
        module = OBJECT_CLASSES.get(name)
        if module is not None:
            try:
                importlib.import_module(module[0])
            except ImportError:
                pass


def _documents(settings: Settings) -> None:
    from orderpipe.bootstrap import sender_lines
    from orderpipe.connectors.base import InvoiceResult, ShipmentResult, StoredFile
    from orderpipe.email.render import babel_locale, render_confirmation
    from orderpipe.email.texts import LANGUAGES
    from orderpipe.invoicing.document import build_invoice
    from orderpipe.invoicing.pdf import render_invoice_pdf
    from orderpipe.invoicing.seller import Seller
    from orderpipe.invoicing.ubl import render_ubl
    from orderpipe.shipping.label import render_label
    from orderpipe.shipping.local import country_name
    from orderpipe.stripe_api.normalise import normalise
    from orderpipe.stripe_api.standin.samples import sample_orders

    seller = Seller.from_settings(settings)
    sample = next(s for s in sample_orders() if s.session is not None and s.line_items)
    order = normalise(sample.payment_intent, sample.session, sample.line_items, sample.customer)
    doc = build_invoice(order, seller, number="WARMUP-000000", issue_date=date.today(),
                        default_vat_rate=settings.orderpipe_vat_rate)
    pdf = render_invoice_pdf(doc)
    render_ubl(doc)
    render_label(tracking_number="CP000000000FI", sender_lines=sender_lines(seller),
                 recipient_lines=["Warm Up", "Katu 1", "00100 Helsinki", "FI"], order_id=order.order_id)
    with tempfile.TemporaryDirectory() as tmp:
        pdf_path = Path(tmp) / "warmup.pdf"
        pdf_path.write_bytes(pdf)
        invoice = InvoiceResult(invoice_number=doc.number, issue_date=date.today().isoformat(),
                                currency=order.currency, amount_total=order.amount_total,
                                amount_tax=order.amount_tax or 0, pdf_path=str(pdf_path), created=True)
        shipment = ShipmentResult(tracking_number="CP000000000FI", carrier="warm-up",
                                  tracking_url="https://tracking.example/", label=StoredFile(key="labels/w.pdf"),
                                  created=True)
        render_confirmation(order, shipment, invoice, sender=settings.orderpipe_email_from,
                            seller_name=seller.name, reply_to=seller.email)
    country_name("SE")  # the label's English country names
    for language in LANGUAGES:  # locale data for every language an email can be in
        babel_locale(language, None, None)
