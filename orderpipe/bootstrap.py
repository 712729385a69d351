"""The composition root: builds every connector from Settings, once per process.

Nothing else constructs adapters. Tests build Services with their own Settings (pointing
at stand-ins) through the same function.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from sqlalchemy import Engine

from orderpipe.connectors.base import (
    AlertSink,
    CrmConnector,
    EmailConnector,
    FileStore,
    InvoicingConnector,
    ProductionLogConnector,
    ShippingConnector,
    StatusCallback,
)
from orderpipe.connectors.vendor_http import Throttle, no_throttle
from orderpipe.db import get_engine
from orderpipe.invoicing.seller import Seller
from orderpipe.settings import Settings, load_settings
from orderpipe.stripe_api.reader import StripeReader


@dataclass
class Services:
    settings: Settings
    engine: Engine
    seller: Seller
    stripe: StripeReader
    crm: CrmConnector
    production_log: ProductionLogConnector
    files: FileStore
    shipping: ShippingConnector
    invoicing: InvoicingConnector
    email: EmailConnector
    alerts: AlertSink
    status_callback: StatusCallback | None

    def connectors(self) -> dict[str, object]:
        """Everything `orderpipe check` verifies, by role."""
        out: dict[str, object] = {
            "stripe": self.stripe, "crm": self.crm, "production_log": self.production_log, "files": self.files,
            "shipping": self.shipping, "invoicing": self.invoicing, "email": self.email, "alerts": self.alerts,
        }
        if self.status_callback is not None:
            out["status_callback"] = self.status_callback
        return out


def sender_lines(seller: Seller) -> list[str]:
    return [seller.name, seller.street, f"{seller.postcode} {seller.city}", seller.country]


def build_alert_sink(settings: Settings, *, throttle: Throttle = no_throttle) -> AlertSink:
    """The configured ops-alert sink alone (what the worker delivers the alerts outbox to)."""
    if settings.orderpipe_alerts == "telegram":
        from orderpipe.alerting.telegram import TelegramAlerts

        return TelegramAlerts(settings, throttle=throttle)
    elif settings.orderpipe_alerts == "slack":
        from orderpipe.alerting.slack import SlackAlerts

        return SlackAlerts(settings)
    from orderpipe.alerting.log import LogAlerts

    return LogAlerts()


def build_services(settings: Settings, *, throttle: Throttle = no_throttle) -> Services:
    engine = get_engine(settings.db_url)
    seller = Seller.from_settings(settings)
    data_dir = settings.data_dir

    files: FileStore
    if settings.orderpipe_file_store == "s3":
        from orderpipe.connectors.file_store_s3 import S3FileStore

        files = S3FileStore(settings)
    else:
        from orderpipe.connectors.file_store_local import LocalFileStore

        files = LocalFileStore(data_dir)

    crm: CrmConnector
    if settings.orderpipe_crm == "zoho":
        from orderpipe.crm.zoho import ZohoCrm

        crm = ZohoCrm(settings, engine, throttle=throttle)
    else:
        from orderpipe.crm.local import LocalCrm

        crm = LocalCrm(engine)

    production_log: ProductionLogConnector
    if settings.orderpipe_production_log == "airtable":
        from orderpipe.production_log.airtable import AirtableProductionLog

        production_log = AirtableProductionLog(settings, throttle=throttle)
    else:
        from orderpipe.production_log.local import LocalProductionLog

        production_log = LocalProductionLog(engine)

    shipping: ShippingConnector
    if settings.orderpipe_shipping == "postnord":
        from orderpipe.shipping.postnord import PostNordShipping

        shipping = PostNordShipping(settings, files, settings.orderpipe_tracking_url, engine=engine)
    else:
        from orderpipe.shipping.local import LocalShipping

        shipping = LocalShipping(engine, files, sender_lines(seller), seller.country, settings.orderpipe_tracking_url)

    from orderpipe.invoicing.local import LocalInvoicing

    local_invoicing = LocalInvoicing(engine, files, seller, settings.orderpipe_vat_rate)
    invoicing: InvoicingConnector = local_invoicing
    if settings.orderpipe_invoicing == "netvisor":
        from orderpipe.invoicing.netvisor import NetvisorInvoicing

        invoicing = NetvisorInvoicing(settings, local_invoicing)

    email: EmailConnector
    if settings.orderpipe_email == "smtp":
        from orderpipe.email.smtp import SmtpEmail

        email = SmtpEmail(settings, engine)
    elif settings.orderpipe_email == "mailgun":
        from orderpipe.email.mailgun import MailgunEmail

        email = MailgunEmail(settings, engine)
    elif settings.orderpipe_email == "resend":
        from orderpipe.email.resend import ResendEmail

        email = ResendEmail(settings, engine, throttle=throttle)
    else:
        from orderpipe.email.outbox import OutboxEmail

        email = OutboxEmail(engine, data_dir)

    sink = build_alert_sink(settings, throttle=throttle)

    callback: StatusCallback | None = None
    if settings.orderpipe_status_callback_url:
        from orderpipe.connectors.status_callback import StatusCallbackClient

        callback = StatusCallbackClient(settings, engine)

    stripe = StripeReader(settings.require_stripe_key(), settings.stripe_api_base_url)
    return Services(settings, engine, seller, stripe, crm, production_log, files, shipping, invoicing, email, sink,
                    callback)


_preset: Settings | None = None


def preset_settings(settings: Settings | None) -> None:
    """The worker hands its already validated Settings to the flow runs it forks."""
    global _preset
    _preset = settings


@functools.cache
def process_services() -> Services:
    """The Services of this process (flow-run processes build them on first use)."""
    from orderpipe.rate_limits import prefect_throttle

    return build_services(_preset or load_settings(), throttle=prefect_throttle)
