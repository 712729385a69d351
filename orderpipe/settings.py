"""The one place where orderpipe reads environment variables.

Every setting is named after its environment variable (see docs in README.md and the
contract). A missing or malformed value raises :class:`SettingsError` naming the variable.
"""

from __future__ import annotations

import string
from contextvars import ContextVar
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def country_code(value: str) -> str:
    """An ISO 3166 alpha-2 code, upper case; ValueError otherwise."""
    v = value.strip().upper()
    if len(v) != 2 or not v.isalpha():
        raise ValueError("must be an ISO 3166 alpha-2 country code such as FI")
    return v


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the environment variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    # Stripe
    stripe_api_key: str | None = Field(default=None, alias="STRIPE_API_KEY")
    stripe_webhook_secret: str | None = Field(default=None, alias="STRIPE_WEBHOOK_SECRET")
    stripe_api_base: str = Field(default="https://api.stripe.com", alias="STRIPE_API_BASE")

    # storage
    orderpipe_data_dir: Path = Field(default=Path("./.orderpipe"), alias="ORDERPIPE_DATA_DIR")
    database_url: str | None = Field(default=None, alias="DATABASE_URL")

    # receiver
    orderpipe_host: str = Field(default="127.0.0.1", alias="ORDERPIPE_HOST")
    orderpipe_port: int = Field(default=8000, ge=1, le=65535, alias="ORDERPIPE_PORT")
    orderpipe_receiver_workers: int = Field(default=2, ge=1, le=64, alias="ORDERPIPE_RECEIVER_WORKERS")

    # Prefect
    prefect_api_url: str | None = Field(default=None, alias="PREFECT_API_URL")
    prefect_server_api_port: int = Field(default=4200, ge=1, le=65535, alias="PREFECT_SERVER_API_PORT")
    # Credentials for a Prefect server behind auth (Prefect's own client reads them too).
    prefect_api_key: str | None = Field(default=None, alias="PREFECT_API_KEY")
    prefect_api_auth_string: str | None = Field(default=None, alias="PREFECT_API_AUTH_STRING")
    orderpipe_run_limit: int = Field(default=4, ge=1, le=64, alias="ORDERPIPE_RUN_LIMIT")
    # None: 50 on Postgres, 1 on SQLite (see runs_per_process)
    orderpipe_runs_per_process: int | None = Field(default=None, ge=1, le=100_000, alias="ORDERPIPE_RUNS_PER_PROCESS")
    orderpipe_poll_seconds: float = Field(default=0.25, gt=0, le=60, alias="ORDERPIPE_POLL_SECONDS")
    orderpipe_reconcile_minutes: int = Field(default=15, ge=1, le=1440, alias="ORDERPIPE_RECONCILE_MINUTES")
    orderpipe_work_pool: str = Field(default="orderpipe", min_length=1, max_length=100, alias="ORDERPIPE_WORK_POOL")
    orderpipe_worker_name: str | None = Field(default=None, max_length=200, alias="ORDERPIPE_WORKER_NAME")
    orderpipe_drain_seconds: float = Field(default=60.0, ge=0, le=3600, alias="ORDERPIPE_DRAIN_SECONDS")
    orderpipe_lease_seconds: float = Field(default=30.0, ge=5, le=600, alias="ORDERPIPE_LEASE_SECONDS")
    orderpipe_rate_limits: str = Field(default="", alias="ORDERPIPE_RATE_LIMITS")

    # connector switches
    orderpipe_crm: Literal["local", "zoho"] = Field(default="local", alias="ORDERPIPE_CRM")
    orderpipe_production_log: Literal["local", "airtable"] = Field(
        default="local", alias="ORDERPIPE_PRODUCTION_LOG"
    )
    orderpipe_shipping: Literal["local", "postnord"] = Field(default="local", alias="ORDERPIPE_SHIPPING")
    orderpipe_invoicing: Literal["local", "netvisor"] = Field(default="local", alias="ORDERPIPE_INVOICING")
    orderpipe_email: Literal["outbox", "smtp", "mailgun", "resend"] = Field(
        default="outbox", alias="ORDERPIPE_EMAIL"
    )
    orderpipe_alerts: Literal["log", "telegram", "slack"] = Field(default="log", alias="ORDERPIPE_ALERTS")
    orderpipe_file_store: Literal["local", "s3"] = Field(default="local", alias="ORDERPIPE_FILE_STORE")

    # seller
    orderpipe_seller_name: str = Field(default="Painotalo Pikkuna Oy", alias="ORDERPIPE_SELLER_NAME")
    orderpipe_seller_street: str = Field(default="Tehtaankatu 12", alias="ORDERPIPE_SELLER_STREET")
    orderpipe_seller_postcode: str = Field(default="00140", alias="ORDERPIPE_SELLER_POSTCODE")
    orderpipe_seller_city: str = Field(default="Helsinki", alias="ORDERPIPE_SELLER_CITY")
    orderpipe_seller_country: str = Field(default="FI", alias="ORDERPIPE_SELLER_COUNTRY")
    orderpipe_seller_vat_id: str = Field(default="FI12345671", alias="ORDERPIPE_SELLER_VAT_ID")
    orderpipe_seller_email: str = Field(default="orders@pikkuna.example", alias="ORDERPIPE_SELLER_EMAIL")
    orderpipe_vat_rate: Decimal = Field(default=Decimal("25.5"), ge=0, le=100, alias="ORDERPIPE_VAT_RATE")
    orderpipe_oss: bool = Field(default=True, alias="ORDERPIPE_OSS")
    orderpipe_seller_endpoint: str | None = Field(default=None, alias="ORDERPIPE_SELLER_ENDPOINT")
    orderpipe_email_from: str = Field(
        default="Painotalo Pikkuna <orders@pikkuna.example>", alias="ORDERPIPE_EMAIL_FROM"
    )
    orderpipe_tracking_url: str = Field(
        default="https://tracking.example/track?id={tracking_number}", alias="ORDERPIPE_TRACKING_URL"
    )

    # Zoho CRM
    zoho_client_id: str | None = Field(default=None, alias="ZOHO_CLIENT_ID")
    zoho_client_secret: str | None = Field(default=None, alias="ZOHO_CLIENT_SECRET")
    zoho_refresh_token: str | None = Field(default=None, alias="ZOHO_REFRESH_TOKEN")
    zoho_api_base: str = Field(default="https://www.zohoapis.eu", alias="ZOHO_API_BASE")
    zoho_accounts_base: str = Field(default="https://accounts.zoho.eu", alias="ZOHO_ACCOUNTS_BASE")
    # Airtable
    airtable_token: str | None = Field(default=None, alias="AIRTABLE_TOKEN")
    airtable_base_id: str | None = Field(default=None, alias="AIRTABLE_BASE_ID")
    airtable_table: str = Field(default="Production log", alias="AIRTABLE_TABLE")
    airtable_api_base: str = Field(default="https://api.airtable.com", alias="AIRTABLE_API_BASE")
    # PostNord
    postnord_api_key: str | None = Field(default=None, alias="POSTNORD_API_KEY")
    postnord_customer_number: str | None = Field(default=None, alias="POSTNORD_CUSTOMER_NUMBER")
    postnord_service_code: str | None = Field(default=None, alias="POSTNORD_SERVICE_CODE")
    postnord_api_base: str = Field(default="https://api2.postnord.com", alias="POSTNORD_API_BASE")
    # Netvisor
    netvisor_sender: str | None = Field(default=None, alias="NETVISOR_SENDER")
    netvisor_customer_id: str | None = Field(default=None, alias="NETVISOR_CUSTOMER_ID")
    netvisor_customer_key: str | None = Field(default=None, alias="NETVISOR_CUSTOMER_KEY")
    netvisor_partner_id: str | None = Field(default=None, alias="NETVISOR_PARTNER_ID")
    netvisor_partner_key: str | None = Field(default=None, alias="NETVISOR_PARTNER_KEY")
    netvisor_organisation_id: str | None = Field(default=None, alias="NETVISOR_ORGANISATION_ID")
    netvisor_api_base: str = Field(default="https://integration.netvisor.fi", alias="NETVISOR_API_BASE")
    # Mailgun
    mailgun_api_key: str | None = Field(default=None, alias="MAILGUN_API_KEY")
    mailgun_domain: str | None = Field(default=None, alias="MAILGUN_DOMAIN")
    mailgun_template: str | None = Field(default=None, alias="MAILGUN_TEMPLATE")
    mailgun_api_base: str = Field(default="https://api.eu.mailgun.net", alias="MAILGUN_API_BASE")
    # Resend
    resend_api_key: str | None = Field(default=None, alias="RESEND_API_KEY")
    resend_api_base: str = Field(default="https://api.resend.com", alias="RESEND_API_BASE")
    # SMTP
    smtp_host: str | None = Field(default=None, alias="SMTP_HOST")
    smtp_port: int = Field(default=587, ge=1, le=65535, alias="SMTP_PORT")
    smtp_username: str | None = Field(default=None, alias="SMTP_USERNAME")
    smtp_password: str | None = Field(default=None, alias="SMTP_PASSWORD")
    smtp_starttls: bool = Field(default=True, alias="SMTP_STARTTLS")
    # Telegram / Slack
    telegram_bot_token: str | None = Field(default=None, alias="TELEGRAM_BOT_TOKEN")
    telegram_chat_id: str | None = Field(default=None, alias="TELEGRAM_CHAT_ID")
    telegram_api_base: str = Field(default="https://api.telegram.org", alias="TELEGRAM_API_BASE")
    slack_webhook_url: str | None = Field(default=None, alias="SLACK_WEBHOOK_URL")
    # S3
    orderpipe_s3_bucket: str | None = Field(default=None, alias="ORDERPIPE_S3_BUCKET")
    orderpipe_s3_prefix: str = Field(default="labels/", alias="ORDERPIPE_S3_PREFIX")
    orderpipe_s3_invoice_prefix: str = Field(default="invoices/", alias="ORDERPIPE_S3_INVOICE_PREFIX")
    aws_region: str | None = Field(default=None, alias="AWS_REGION")
    aws_endpoint_url_s3: str | None = Field(default=None, alias="AWS_ENDPOINT_URL_S3")
    # status callback
    orderpipe_status_callback_url: str | None = Field(default=None, alias="ORDERPIPE_STATUS_CALLBACK_URL")
    orderpipe_status_callback_secret: str | None = Field(default=None, alias="ORDERPIPE_STATUS_CALLBACK_SECRET")
    orderpipe_status_callback_method: Literal["POST", "PATCH"] = Field(
        default="POST", alias="ORDERPIPE_STATUS_CALLBACK_METHOD"
    )

    @field_validator("orderpipe_rate_limits")
    @classmethod
    def _rate_limits(cls, v: str) -> str:
        from orderpipe.rate_limits import parse_overrides

        parse_overrides(v)
        return v.strip()

    @field_validator("orderpipe_seller_country")
    @classmethod
    def _country(cls, v: str) -> str:
        return country_code(v)

    @field_validator("orderpipe_seller_endpoint")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        scheme, sep, value = v.strip().partition(":")
        if not sep or not (len(scheme) == 4 and scheme.isdigit()) or not value.strip():
            raise ValueError("must be <4-digit EAS scheme>:<identifier>, e.g. 0037:003712345671")
        return v.strip()

    @field_validator("orderpipe_tracking_url")
    @classmethod
    def _tracking_url(cls, v: str) -> str:
        """Checked now, not after a booking: a stray brace must never fail a shipped order."""
        v = v.strip()
        if not v.startswith(("https://", "http://")):
            raise ValueError("must be an http(s) URL, e.g. https://tracking.example/track?id={tracking_number}")
        try:
            fields = {name for _text, name, _spec, _conv in string.Formatter().parse(v) if name}
            v.format(tracking_number="00373500454541020957")
        except (ValueError, KeyError, IndexError, AttributeError) as exc:
            raise ValueError(f"is not a valid template ({type(exc).__name__}: {exc}); the only placeholder is "
                             "{tracking_number}, write a literal brace as {{ or }}") from None
        if fields != {"tracking_number"}:
            raise ValueError("must contain {tracking_number} exactly as the only placeholder")
        return v

    @field_validator("stripe_webhook_secret")
    @classmethod
    def _secrets(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        for part in v.split(","):
            if not part.strip().startswith("whsec_"):
                raise ValueError("each comma-separated secret must start with whsec_")
        return v

    @field_validator("database_url")
    @classmethod
    def _db_url(cls, v: str | None) -> str | None:
        if v is None or not v.strip():
            return None
        v = v.strip()
        if v.startswith("postgres://") or v.startswith("postgresql://"):
            v = "postgresql+psycopg://" + v.split("://", 1)[1]
        if not (v.startswith("sqlite:///") or v.startswith("postgresql+psycopg://")):
            raise ValueError("must be sqlite:///<path> or postgresql+psycopg://user@host:port/db")
        return v

    @model_validator(mode="after")
    def _connector_credentials(self) -> Settings:
        if not _CHECK_CONNECTORS.get():  # the receiver alone: it builds no connector
            return self
        needs: list[tuple[bool, list[str]]] = [
            (self.orderpipe_crm == "zoho", ["zoho_client_id", "zoho_client_secret", "zoho_refresh_token"]),
            (self.orderpipe_production_log == "airtable", ["airtable_token", "airtable_base_id"]),
            (
                self.orderpipe_shipping == "postnord",
                ["postnord_api_key", "postnord_customer_number", "postnord_service_code"],
            ),
            (
                self.orderpipe_invoicing == "netvisor",
                [
                    "netvisor_sender", "netvisor_customer_id", "netvisor_customer_key",
                    "netvisor_partner_id", "netvisor_partner_key", "netvisor_organisation_id",
                ],
            ),
            (self.orderpipe_email == "mailgun", ["mailgun_api_key", "mailgun_domain", "mailgun_template"]),
            (self.orderpipe_email == "resend", ["resend_api_key"]),
            (self.orderpipe_email == "smtp", ["smtp_host"]),
            (self.orderpipe_alerts == "telegram", ["telegram_bot_token", "telegram_chat_id"]),
            (self.orderpipe_alerts == "slack", ["slack_webhook_url"]),
            (self.orderpipe_file_store == "s3", ["orderpipe_s3_bucket"]),
            (bool(self.orderpipe_status_callback_url), ["orderpipe_status_callback_secret"]),
        ]
        missing = [
            env_name(f) for on, fields in needs if on for f in fields if not getattr(self, f)
        ]
        if missing:
            raise ValueError("missing " + ", ".join(missing))
        return self

    # ---- derived values -------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.orderpipe_data_dir.expanduser().resolve()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'orderpipe.db'}"

    @property
    def runs_per_process(self) -> int:
        """Runs one forked run process executes before it is replaced. On SQLite the Prefect
        server's database is SQLite too, and the faster request rate of reused processes
        made it lock (HTTP 503, client back-off of 2-64 s, a 120-order burst stalled): a
        fresh process per run there, which is fast enough (`make bench`)."""
        if self.orderpipe_runs_per_process is not None:
            return self.orderpipe_runs_per_process
        return 50 if self.is_postgres else 1

    @property
    def is_postgres(self) -> bool:
        return self.db_url.startswith("postgresql")

    @property
    def webhook_secrets(self) -> list[str]:
        if not self.stripe_webhook_secret:
            return []
        return [s.strip() for s in self.stripe_webhook_secret.split(",") if s.strip()]

    @property
    def stripe_api_base_url(self) -> str:
        return self.stripe_api_base.rstrip("/")

    def require_webhook_secret(self) -> list[str]:
        if not self.webhook_secrets:
            raise SettingsError(
                "STRIPE_WEBHOOK_SECRET is not set: the receiver never runs without signature checks "
                "(set one or more comma-separated whsec_... secrets)"
            )
        return self.webhook_secrets

    def require_stripe_key(self) -> str:
        if not self.stripe_api_key:
            raise SettingsError("STRIPE_API_KEY is not set: orderpipe needs it to read orders back from Stripe")
        return self.stripe_api_key


def env_name(field_name: str) -> str:
    info = Settings.model_fields[field_name]
    return info.alias or field_name.upper()


_CHECK_CONNECTORS: ContextVar[bool] = ContextVar("orderpipe_check_connectors", default=True)


def load_settings(*, connectors: bool = True, **overrides: object) -> Settings:
    """Read the environment; raise SettingsError naming each bad variable.

    `connectors=False` (the receiver, which talks to no vendor): the connectors'
    credentials are not required."""
    token = _CHECK_CONNECTORS.set(connectors)
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = err.get("loc") or ()
            field = str(loc[0]) if loc else ""
            name = env_name(field) if field in Settings.model_fields else (field or "settings")
            msg = err.get("msg", "invalid")
            msg = msg.removeprefix("Value error, ")
            problems.append(f"{name}: {msg}" if name != "settings" else msg)
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None
    finally:
        _CHECK_CONNECTORS.reset(token)
