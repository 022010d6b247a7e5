"""The transport the settings ask for: SMTP when ``LEADFLOW_SMTP_URL`` is set, else .eml files."""

from __future__ import annotations

from leadflow.kernel.settings import Settings
from leadflow.messaging.delivery.transport.base import EmailTransport
from leadflow.messaging.delivery.transport.file import FileTransport
from leadflow.messaging.delivery.transport.smtp import SmtpTransport


def build_transport(settings: Settings) -> EmailTransport:
    if settings.smtp_url is not None:
        return SmtpTransport.from_url(settings.smtp_url.get_secret_value(), pool_size=settings.smtp_pool_size)
    return FileTransport(settings.email_outbox_dir)
