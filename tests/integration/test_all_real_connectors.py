"""The process-order flow with every real connector switched on, aimed at the local stand-ins.

Zoho CRM, Airtable, PostNord (labels in moto's S3), Netvisor, one email transport (Mailgun,
Resend or SMTP), one alert sink (Telegram or Slack) and the shop's status callback: the same
order outcome as with the embedded defaults, each vendor holding exactly one of each thing,
and a replay that creates nothing new anywhere.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from sqlmodel import Session, select

from flows.process_order import OrderNotFulfilled, process_order
from orderpipe.db import get_engine
from orderpipe.orders import ledger
from orderpipe.stripe_api.standin import StandinStore
from orderpipe.stripe_api.standin.samples import FI_CONSUMER, SE_CUSTOMER
from orderpipe.tables import Invoice
from tests.flow_env import add_order_copy, flow_settings
from tests.standins.airtable import AirtableStandIn
from tests.standins.mailgun import MailgunStandIn
from tests.standins.netvisor import CREDENTIALS, NetvisorStandIn
from tests.standins.postnord import PostNordStandIn
from tests.standins.resend import ResendStandIn
from tests.standins.s3 import MotoS3
from tests.standins.shop_callback import ShopCallbackStandIn, shop_verifies
from tests.standins.slack import SlackStandIn
from tests.standins.smtp import SmtpStandIn
from tests.standins.stripe import running_standin
from tests.standins.telegram import TelegramStandIn
from tests.standins.zoho import CLIENT_ID, CLIENT_SECRET, REFRESH_TOKEN, ZohoStandIn

REGION = "eu-north-1"
AWS_KEY, AWS_SECRET = "testing", "testing-secret"
S3_PREFIX = "shop-a/labels/"
S3_INVOICE_PREFIX = "shop-a/invoices/"
MAILGUN_KEY, MAILGUN_DOMAIN = "key-allreal-0123456789", "mg.example.fi"
RESEND_KEY = "re_allreal_0123456789"
TELEGRAM_TOKEN, TELEGRAM_CHAT = "123456789:AAE-allreal-token", -1001234567890
CALLBACK_SECRET = "cb_allreal_secret_0123"
ALL_COMPLETED = "completed: " + ", ".join(ledger.STEPS)


@pytest.fixture
def allreal_prefect_api(prefect_api: str) -> str:
    return prefect_api  # the session's flow-test server (tests/integration/conftest.py)


@pytest.fixture(scope="module")
def allreal_moto_s3() -> Iterator[MotoS3]:
    with MotoS3() as server:
        yield server


@pytest.fixture
def allreal_stripe() -> Iterator[tuple[str, StandinStore]]:
    with running_standin(seed=True) as pair:
        yield pair


@dataclass
class Vendors:
    """Every stand-in of one test, and the environment aiming the real connectors at them."""

    zoho: ZohoStandIn
    airtable: AirtableStandIn
    postnord: PostNordStandIn
    netvisor: NetvisorStandIn
    shop: ShopCallbackStandIn
    s3: Any  # a boto3 S3 client, to look behind the file store's back
    bucket: str
    email_kind: str
    email: MailgunStandIn | ResendStandIn | SmtpStandIn
    alerts_kind: str
    alerts: TelegramStandIn | SlackStandIn
    env: dict[str, str] = field(default_factory=dict)

    def s3_keys(self) -> list[str]:
        return sorted(o["Key"] for o in self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", []))

    def s3_object(self, key: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def emails(self) -> list[tuple[list[str], list[bytes]]]:
        """(recipients, attachment bytes) of every message the email stand-in accepted."""
        if isinstance(self.email, MailgunStandIn):
            return [(m.form.get("to", []), [data for _name, _type, data in m.files.get("attachment", [])])
                    for m in self.email.messages]
        if isinstance(self.email, ResendStandIn):
            return [(list(p["to"]), [base64.b64decode(a["content"]) for a in p.get("attachments", [])])
                    for p in self.email.emails.values()]
        return [(c.rcpt_tos, [a.get_payload(decode=True) for a in c.message.iter_attachments()])
                for c in self.email.messages]

    def alert_texts(self) -> list[str]:
        return [str(m["text"]) for m in self.alerts.messages]

    def counts(self) -> dict[str, int]:
        return {
            "zoho contacts": len(self.zoho.records["Contacts"]), "zoho deals": len(self.zoho.records["Deals"]),
            "airtable records": len(self.airtable.records), "postnord bookings": len(self.postnord.bookings),
            "s3 objects": len(self.s3_keys()), "netvisor invoices": len(self.netvisor.invoices),
            "emails": len(self.emails()), "callbacks": len(self.shop.deliveries), "alerts": len(self.alert_texts()),
        }


def _start_email(kind: str, stack: ExitStack) -> tuple[MailgunStandIn | ResendStandIn | SmtpStandIn, dict[str, str]]:
    if kind == "mailgun":
        mailgun = stack.enter_context(MailgunStandIn(api_key=MAILGUN_KEY, domain=MAILGUN_DOMAIN))
        return mailgun, {"MAILGUN_API_KEY": MAILGUN_KEY, "MAILGUN_DOMAIN": MAILGUN_DOMAIN,  # type: ignore[return-value]
                         "MAILGUN_TEMPLATE": "order-confirmation", "MAILGUN_API_BASE": mailgun.url}
    if kind == "resend":
        resend = stack.enter_context(ResendStandIn(api_key=RESEND_KEY))
        return resend, {"RESEND_API_KEY": RESEND_KEY, "RESEND_API_BASE": resend.url}  # type: ignore[return-value]
    smtp = stack.enter_context(SmtpStandIn())
    return smtp, {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port), "SMTP_STARTTLS": "false"}


def _start_alerts(kind: str, stack: ExitStack) -> tuple[TelegramStandIn | SlackStandIn, dict[str, str]]:
    if kind == "telegram":
        telegram = stack.enter_context(TelegramStandIn(token=TELEGRAM_TOKEN, chats={TELEGRAM_CHAT}))
        return telegram, {"TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,  # type: ignore[return-value]
                          "TELEGRAM_CHAT_ID": str(TELEGRAM_CHAT), "TELEGRAM_API_BASE": telegram.url}
    slack = stack.enter_context(SlackStandIn())
    return slack, {"SLACK_WEBHOOK_URL": slack.webhook_url}  # type: ignore[return-value]


@pytest.fixture
def vendors(request: pytest.FixtureRequest, allreal_moto_s3: MotoS3,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[Vendors]:
    email_kind, alerts_kind = request.param
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "SMTP_USERNAME", "SMTP_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    with ExitStack() as stack:
        zoho = stack.enter_context(ZohoStandIn())
        airtable = stack.enter_context(AirtableStandIn())  # Airtable's real 5 requests/s per base
        postnord = stack.enter_context(PostNordStandIn())
        netvisor = stack.enter_context(NetvisorStandIn())
        shop = stack.enter_context(ShopCallbackStandIn(secret=CALLBACK_SECRET))
        email, email_env = _start_email(email_kind, stack)
        alerts, alerts_env = _start_alerts(alerts_kind, stack)
        bucket = f"orderpipe-allreal-{uuid.uuid4().hex[:12]}"
        s3 = boto3.client("s3", endpoint_url=allreal_moto_s3.url, region_name=REGION, aws_access_key_id=AWS_KEY,
                          aws_secret_access_key=AWS_SECRET)
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        env = {
            "ORDERPIPE_CRM": "zoho", "ORDERPIPE_PRODUCTION_LOG": "airtable", "ORDERPIPE_SHIPPING": "postnord",
            "ORDERPIPE_INVOICING": "netvisor", "ORDERPIPE_EMAIL": email_kind, "ORDERPIPE_ALERTS": alerts_kind,
            "ORDERPIPE_FILE_STORE": "s3",
            "ZOHO_CLIENT_ID": CLIENT_ID, "ZOHO_CLIENT_SECRET": CLIENT_SECRET, "ZOHO_REFRESH_TOKEN": REFRESH_TOKEN,
            "ZOHO_API_BASE": zoho.url, "ZOHO_ACCOUNTS_BASE": zoho.url,
            "AIRTABLE_TOKEN": airtable.token, "AIRTABLE_BASE_ID": airtable.base_id, "AIRTABLE_TABLE": airtable.table,
            "AIRTABLE_API_BASE": airtable.url,
            "POSTNORD_API_KEY": postnord.api_key, "POSTNORD_CUSTOMER_NUMBER": "0111111118",
            "POSTNORD_SERVICE_CODE": "19", "POSTNORD_API_BASE": postnord.url,
            "NETVISOR_SENDER": CREDENTIALS["sender"], "NETVISOR_CUSTOMER_ID": CREDENTIALS["customer_id"],
            "NETVISOR_CUSTOMER_KEY": CREDENTIALS["customer_key"], "NETVISOR_PARTNER_ID": CREDENTIALS["partner_id"],
            "NETVISOR_PARTNER_KEY": CREDENTIALS["partner_key"],
            "NETVISOR_ORGANISATION_ID": CREDENTIALS["organisation_id"], "NETVISOR_API_BASE": netvisor.url,
            "ORDERPIPE_S3_BUCKET": bucket, "ORDERPIPE_S3_PREFIX": S3_PREFIX,
            "ORDERPIPE_S3_INVOICE_PREFIX": S3_INVOICE_PREFIX, "AWS_ENDPOINT_URL_S3": allreal_moto_s3.url,
            "AWS_REGION": REGION, "AWS_ACCESS_KEY_ID": AWS_KEY, "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
            "ORDERPIPE_STATUS_CALLBACK_URL": shop.callback_url, "ORDERPIPE_STATUS_CALLBACK_SECRET": CALLBACK_SECRET,
            "ORDERPIPE_STATUS_CALLBACK_METHOD": "POST",
            **email_env, **alerts_env,
        }
        yield Vendors(zoho=zoho, airtable=airtable, postnord=postnord, netvisor=netvisor, shop=shop, s3=s3,
                      bucket=bucket, email_kind=email_kind, email=email, alerts_kind=alerts_kind, alerts=alerts,
                      env=env)


def _local_invoice_number(db_url: str, order_id: str) -> str:
    with Session(get_engine(db_url)) as s:
        return s.exec(select(Invoice.number).where(Invoice.order_id == order_id)).one()


@pytest.mark.parametrize("vendors", [("mailgun", "telegram"), ("resend", "slack"), ("smtp", "telegram")],
                         ids=["mailgun-telegram", "resend-slack", "smtp-telegram"], indirect=True)
def test_order_is_fulfilled_through_every_real_connector_and_a_replay_creates_nothing(
    allreal_prefect_api: str, allreal_stripe: tuple[str, StandinStore], vendors: Vendors, data_dir: Path,
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    stripe_base, _store = allreal_stripe
    order_id = FI_CONSUMER
    with flow_settings(monkeypatch, allreal_prefect_api, data_dir, sqlite_url, stripe_base, **vendors.env):
        engine = get_engine(sqlite_url)
        ledger.record_missing_order(engine, order_id, source="test")
        result = process_order(order_id=order_id)

        # the same outcome as with the embedded defaults
        assert result["steps"] == {s: "completed" for s in ledger.STEPS}
        assert ledger.steps_of(engine, order_id) == {s: "completed" for s in ledger.STEPS}
        row = ledger.get_order(engine, order_id)
        assert row is not None and row.state == "completed" and row.customer_email
        [booking] = vendors.postnord.bookings
        number = _local_invoice_number(sqlite_url, order_id)
        assert row.tracking_number == result["tracking_number"] == booking.item_id
        assert row.invoice_number == result["invoice_number"] == number

        # each vendor holds exactly one of each thing
        [contact] = vendors.zoho.records["Contacts"].values()
        [deal] = vendors.zoho.records["Deals"].values()
        assert contact["Email"].lower() == row.customer_email.lower()
        assert deal["Stripe_PaymentIntent"] == order_id and deal["Contact_Name"]["id"] == contact["id"]
        [entry] = vendors.airtable.records.values()
        assert entry["fields"]["Order ID"] == order_id and entry["fields"]["Status"] == ALL_COMPLETED
        assert vendors.s3_keys() == sorted([f"{S3_PREFIX}{order_id}.pdf", f"{S3_INVOICE_PREFIX}{number}.pdf",
                                            f"{S3_INVOICE_PREFIX}{number}.xml"])
        label = vendors.s3_object(f"{S3_PREFIX}{order_id}.pdf")
        assert label == booking.label and label.startswith(b"%PDF")
        assert b"<cbc:PayableAmount" in vendors.s3_object(f"{S3_INVOICE_PREFIX}{number}.xml")
        assert not (data_dir / "invoices").exists() and not (data_dir / "postnord").exists()
        [invoice] = vendors.netvisor.invoices
        assert invoice.number == number and invoice.our_reference == order_id
        [(recipients, attachments)] = vendors.emails()
        assert recipients == [row.customer_email]
        invoice_pdf = vendors.s3_object(f"{S3_INVOICE_PREFIX}{number}.pdf")
        assert invoice_pdf.startswith(b"%PDF")
        assert attachments == [invoice_pdf]  # all three transports carry the bucket's invoice PDF
        [callback] = vendors.shop.deliveries
        assert shop_verifies(callback.raw, callback.signature, CALLBACK_SECRET)
        assert callback.method == "POST"
        assert {k: callback.body[k] for k in ("order_id", "status", "tracking_number", "invoice_number",
                                               "failed_step")} == {
            "order_id": order_id, "status": "fulfilled", "tracking_number": booking.item_id,
            "invoice_number": number, "failed_step": None}
        assert vendors.alert_texts() == []
        before = vendors.counts()

        # a replay of the completed order completes and creates nothing new anywhere
        again = process_order(order_id=order_id)
        assert again["steps"] == {s: "completed" for s in ledger.STEPS}
        assert (again["tracking_number"], again["invoice_number"]) == (booking.item_id, number)
        assert vendors.counts() == before
        assert vendors.airtable.by_order(order_id)[0]["fields"]["Status"] == ALL_COMPLETED
        row = ledger.get_order(engine, order_id)
        assert row is not None and row.state == "completed"


@pytest.mark.parametrize("vendors", [("mailgun", "telegram"), ("resend", "slack")],
                         ids=["telegram", "slack"], indirect=True)
def test_a_failing_step_alerts_the_real_sink_naming_order_and_step(
    allreal_prefect_api: str, allreal_stripe: tuple[str, StandinStore], vendors: Vendors, data_dir: Path,
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    stripe_base, store = allreal_stripe
    order_id = add_order_copy(store, SE_CUSTOMER, "pi_3AllRealNoAddress01", drop_shipping=True)
    with flow_settings(monkeypatch, allreal_prefect_api, data_dir, sqlite_url, stripe_base, **vendors.env):
        engine = get_engine(sqlite_url)
        ledger.record_missing_order(engine, order_id, source="test")
        with pytest.raises(OrderNotFulfilled, match="shipment failed: .*no shipping address"):
            process_order(order_id=order_id)

        steps = ledger.steps_of(engine, order_id)
        assert steps == {"fetch_order": "completed", "crm": "completed", "production_log": "completed",
                         "shipment": "failed", "invoice": "completed", "email": "pending"}
        row = ledger.get_order(engine, order_id)
        assert row is not None and row.state == "failed" and row.tracking_number is None
        number = _local_invoice_number(sqlite_url, order_id)
        assert row.invoice_number == number

        assert vendors.postnord.requests == []  # the order was refused before anything was sent
        assert vendors.s3_keys() == [f"{S3_INVOICE_PREFIX}{number}.pdf", f"{S3_INVOICE_PREFIX}{number}.xml"]
        assert len(vendors.zoho.records["Deals"]) == 1
        [invoice] = vendors.netvisor.invoices
        assert invoice.number == number and invoice.our_reference == order_id
        [entry] = vendors.airtable.records.values()
        assert entry["fields"]["Status"].endswith("; failed: shipment")
        assert vendors.emails() == []
        [alert] = vendors.alert_texts()
        assert order_id in alert and "step shipment" in alert and "no shipping address" in alert
        [callback] = vendors.shop.deliveries
        assert shop_verifies(callback.raw, callback.signature, CALLBACK_SECRET)
        assert {k: callback.body[k] for k in ("order_id", "status", "tracking_number", "invoice_number",
                                               "failed_step")} == {
            "order_id": order_id, "status": "failed", "tracking_number": None, "invoice_number": number,
            "failed_step": "shipment"}
