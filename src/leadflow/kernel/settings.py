"""Runtime settings, read from the environment with the ``LEADFLOW_`` prefix."""

from __future__ import annotations

from functools import cached_property
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from leadflow.kernel.netpolicy import Policy

DEFAULT_SQLITE_URL = "sqlite:///./leadflow.db"


def normalise_database_url(url: str) -> str:
    """Pick our drivers for the short URL forms people paste (``postgresql://``, ``sqlite://``)."""
    if url.startswith(("postgres://", "postgresql://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith("sqlite://"):
        return "sqlite+pysqlite://" + url.split("://", 1)[1]
    return url


class Settings(BaseSettings):
    """Everything an operator may set. Switching to PostgreSQL is setting ``LEADFLOW_DATABASE_URL``."""

    model_config = SettingsConfigDict(env_prefix="LEADFLOW_", extra="ignore", env_ignore_empty=True)

    database_url: str = DEFAULT_SQLITE_URL
    base_url: str | None = None
    secret_key: SecretStr | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"

    # Ingestion and processing.
    processing_batch_size: int = Field(default=1000, ge=1, le=10_000)
    worker_poll_interval: float = Field(default=0.5, gt=0)
    default_phone_region: str | None = None
    scheduler_interval: float = Field(default=5.0, gt=0, description="seconds between checks for due work")
    vacuum_interval: float = Field(
        default=30.0, ge=0, description="PostgreSQL: seconds between vacuums of the queue tables; 0: never"
    )
    vacuum_min_dead_rows: int = Field(
        default=10_000, ge=1, description="PostgreSQL: dead rows that make a queue table due for VACUUM"
    )
    scoring_age_interval: float = Field(
        default=3600.0, gt=0, description="seconds between score aging passes"
    )

    # Per API key, per process; 0 disables the limit.
    ingest_rate_limit: float = Field(default=2000.0, ge=0, description="ingest requests per second per key")
    api_rate_limit: float = Field(default=500.0, ge=0, description="REST requests per second per key")
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024, description="largest REST request body")
    form_rate_per_minute: int = Field(
        default=10, ge=0, description="hosted form posts per minute per client address; 0: unlimited"
    )
    form_max_body_bytes: int = Field(default=64 * 1024, ge=1024, description="largest hosted form post")
    import_max_bytes: int = Field(
        default=50 * 1024 * 1024,
        ge=1024,
        le=1024 * 1024 * 1024,
        description="largest CSV upload to POST /api/v1/imports (it is held in memory and stored until done)",
    )

    # Journeys.
    default_timezone: str = Field(default="UTC", description="for contacts with no time zone of their own")
    journey_batch_size: int = Field(default=500, ge=1, le=10_000, description="due steps claimed at once")
    frequency_cap_per_day: int = Field(default=3, ge=0, description="marketing emails per contact; 0: none")
    frequency_cap_per_week: int = Field(default=10, ge=0, description="marketing emails per contact; 0: none")

    # Email. With no SMTP URL, messages are written to ``email_outbox_dir`` as .eml files.
    smtp_url: SecretStr | None = Field(default=None, description="smtp://user:pass@host:port, smtps://...")
    smtp_pool_size: int = Field(default=4, ge=1, le=64, description="SMTP connections per process")
    email_from: str = "leadflow <noreply@localhost>"
    # How they are derived when unset: leadflow.kernel.brand.
    brand_name: str | None = Field(
        default=None, description="the sender's name in templates (default: email_from's display name)"
    )
    brand_url: str | None = Field(
        default=None, description="the website templates link to (default: https:// + the sender's domain)"
    )
    brand_address: str = Field(default="", description="the postal address marketing email must show")
    sales_email: str | None = Field(
        default=None, description="owner notices for contacts without an owner (default: reply-to, sender)"
    )
    email_reply_to: str | None = None
    email_outbox_dir: str = "./outbox"
    email_batch_size: int = Field(default=200, ge=1, le=5_000, description="messages claimed at once")
    email_threads: int = Field(
        default=2, ge=1, le=16, description="deliverer threads per worker, sharing its SMTP pool"
    )
    email_lease_seconds: float = Field(
        default=120.0, gt=0, description="a claimed message is retried after this if its sender vanished"
    )
    email_rate_per_minute: int = Field(default=0, ge=0, description="messages per minute; 0: unlimited")
    email_domain_rate_per_minute: int = Field(
        default=0, ge=0, description="messages per minute to one recipient domain; 0: unlimited"
    )
    dkim_selector: str | None = None
    dkim_domain: str | None = None
    dkim_private_key: SecretStr | None = None
    dkim_private_key_file: str | None = None
    # A second signature (RFC 8463 §4: Ed25519 beside RSA while receivers catch up), same domain.
    dkim_second_selector: str | None = None
    dkim_second_private_key: SecretStr | None = None
    dkim_second_private_key_file: str | None = None
    dkim_canonicalization: Literal["relaxed/simple", "relaxed/relaxed", "simple/simple", "simple/relaxed"] = (
        "relaxed/simple"
    )

    # Outgoing webhooks (Standard Webhooks). Without a secret, one is derived from the secret key.
    webhook_secret: SecretStr | None = None
    webhook_timeout: float = Field(default=15.0, gt=0, le=30)
    # After an endpoint's secret is rotated, its old secret signs too (a second signature) this long.
    webhook_rotation_grace: float = Field(default=86400.0, ge=0, description="seconds")

    # Providers' own signatures on bounce webhooks, checked when set (beside the API key).
    sendgrid_verification_key: SecretStr | None = Field(
        default=None, description="SendGrid's signed Event Webhook public key (base64 DER, as shown)"
    )
    mailgun_signing_key: SecretStr | None = Field(default=None, description="Mailgun's webhook signing key")

    # Amazon SNS (SES feedback): subscription confirmations are fetched only from addresses matching this.
    sns_subscribe_url_pattern: str = Field(
        default=r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/",
        description="a regular expression the SubscribeURL of an SNS subscription confirmation must match",
    )
    # Every SNS message's signature is verified with the certificate at its SigningCertURL, fetched only
    # from addresses matching this (messaging/feedback/sns.py).
    sns_cert_url_pattern: str = Field(
        default=r"^https://sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?/[^/?#]+\.pem$",
        description="a regular expression the SigningCertURL of an SNS message must match",
    )

    # Outgoing requests on a user's behalf never reach loopback, private, link-local, ... addresses
    # (kernel/netguard.py) unless this admits them.
    network_allow: str = Field(
        default="",
        description="comma-separated CIDRs and host names outgoing requests may reach although internal",
    )
    # Connector vendor clients verify TLS against the system's CAs; a bundle here replaces them (a local
    # vendor peer's CA in tests or staging), for the worker and the API's "test connection" alike.
    connectors_ca_file: str = Field(
        default="",
        description="a CA bundle (PEM) connector clients trust instead of the system's; empty: the system's",
    )

    @field_validator("database_url")
    @classmethod
    def _driver(cls, value: str) -> str:
        return normalise_database_url(value)

    @field_validator("network_allow")
    @classmethod
    def _allow_list(cls, value: str) -> str:
        Policy.parse(value)  # an entry that is neither a network nor a name stops the start
        return value

    @cached_property
    def public_url(self) -> str:
        """The address links in emails and pages point at."""
        return (self.base_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
