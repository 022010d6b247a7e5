"""Who the email speaks for: the brand's name, website and postal address, and where internal notices go.

Rules (the operator sets as little as possible, and a sender never signs as "leadflow"):

* **Name**: ``LEADFLOW_BRAND_NAME``; else the display name of ``LEADFLOW_EMAIL_FROM``
  (``Course School <hello@school.example>`` → ``Course School``); else the sender's domain
  (``school.example``). Never the product's own name.
* **Website**: ``LEADFLOW_BRAND_URL``; else ``https://`` and the sender's domain without a mail-only label
  (``news.school.example`` → ``https://school.example``), the site the business owns. Only a sender at a
  local domain (nothing configured) falls back to leadflow's own ``LEADFLOW_BASE_URL``.
* **Postal address**: ``LEADFLOW_BRAND_ADDRESS``. Marketing email must carry one (CAN-SPAM; Mailchimp
  refuses a campaign without one), so publishing a marketing journey or sending a marketing broadcast
  without it is refused: :func:`require_postal_address`.
* **Sales inbox** (owner notices for contacts without an owner): ``LEADFLOW_SALES_EMAIL``; else
  ``LEADFLOW_EMAIL_REPLY_TO``; else the sender's address.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from email.utils import parseaddr
from typing import Literal

from leadflow.kernel.errors import Invalid
from leadflow.kernel.settings import Settings

__all__ = ["Brand", "brand", "is_local_host", "require_postal_address", "sales_address", "sender_domain"]

PRODUCT = "leadflow"
# Labels a sending subdomain often has that the website does not: mail.school.example -> school.example.
MAIL_LABELS = ("mail", "email", "mailer", "news", "newsletter", "mg", "em", "send", "bounce", "smtp")
LOCAL_SUFFIXES = (".localhost", ".local", ".localdomain", ".internal", ".lan", ".home.arpa")


NameSource = Literal["setting", "sender name", "sender domain"]
UrlSource = Literal["setting", "sender domain", "base url"]


@dataclass(frozen=True)
class Brand:
    name: str
    url: str
    address: str
    name_from: NameSource
    url_from: UrlSource

    def variables(self) -> dict[str, str]:
        """``{{ brand.* }}`` in templates."""
        return {"name": self.name, "url": self.url, "address": self.address}


def is_local_host(host: str) -> bool:
    """``localhost``, a loopback or private IP, or a name without a dot or under a local-only suffix:
    nobody outside can reach it (or receive mail there)."""
    host = host.strip().strip("[]").lower().rstrip(".")
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        return host == "localhost" or "." not in host or host.endswith(LOCAL_SUFFIXES)


def sender_domain(settings: Settings) -> str:
    """The domain of ``LEADFLOW_EMAIL_FROM``'s address, lower-cased ('' when it has none)."""
    return parseaddr(settings.email_from)[1].rpartition("@")[2].strip().lower()


def _site_domain(domain: str) -> str:
    labels = domain.split(".")
    while len(labels) > 2 and labels[0] in MAIL_LABELS:
        labels = labels[1:]
    return ".".join(labels)


def brand(settings: Settings) -> Brand:
    """The brand as templates and pages show it (see the module's rules)."""
    name_from: NameSource
    url_from: UrlSource
    domain = sender_domain(settings)
    display = parseaddr(settings.email_from)[0].strip()
    if settings.brand_name:
        name, name_from = settings.brand_name.strip(), "setting"
    elif display and display.lower() != PRODUCT:
        name, name_from = display, "sender name"
    else:
        name, name_from = _site_domain(domain) or "us", "sender domain"
    if settings.brand_url:
        url, url_from = settings.brand_url.rstrip("/"), "setting"
    elif domain and not is_local_host(domain):
        url, url_from = f"https://{_site_domain(domain)}", "sender domain"
    else:
        url, url_from = settings.public_url, "base url"
    return Brand(
        name=name,
        url=url,
        address=settings.brand_address.strip(),
        name_from=name_from,
        url_from=url_from,
    )


def sales_address(settings: Settings) -> str | None:
    """Where a notice about a contact without an owner goes (see the module's rules)."""
    for candidate in (settings.sales_email, settings.email_reply_to, settings.email_from):
        address = parseaddr(candidate or "")[1]
        if "@" in address:
            return address
    return None


def require_postal_address(settings: Settings, what: str) -> None:
    """Refuse to send marketing email without the sender's postal address in its footer (CAN-SPAM).

    ``what`` names the thing refused, e.g. "a marketing journey"."""
    if not settings.brand_address.strip():
        raise Invalid(
            f"{what} needs the sender's postal address in every email's footer (CAN-SPAM): "
            "set LEADFLOW_BRAND_ADDRESS, e.g. LEADFLOW_BRAND_ADDRESS='1 Main St, Springfield, IL 62701, USA'",
            code="missing_postal_address",
            details={"setting": "LEADFLOW_BRAND_ADDRESS"},
        )
