"""``leadflow doctor``: what real sending still lacks, one check a line, each with what to set.

The checks (each passes or says why not):

* **SMTP**: ``LEADFLOW_SMTP_URL`` is set, and the server answers EHLO (and STARTTLS and the login, when
  the URL asks for them) within the timeout. Without it, email only lands in ``.eml`` files.
* **Sender**: ``LEADFLOW_EMAIL_FROM`` is an address at a real domain (not ``@localhost``), which mailbox
  providers can check SPF, DKIM and DMARC against.
* **Brand name** and **brand website**: set, or derived from the sender (:mod:`leadflow.kernel.brand`);
  a name derived from a bare domain, or links falling back to leadflow's own address, are not good enough.
* **Postal address**: ``LEADFLOW_BRAND_ADDRESS`` (CAN-SPAM; marketing cannot be published without it).
* **DKIM**: a selector and a readable RSA or Ed25519 key, signing for the From domain or a parent of it
  (DMARC's relaxed alignment), for each configured signature.
* **Base URL**: ``LEADFLOW_BASE_URL`` (where unsubscribe, tracking and preference links point) is not a
  local address, and ``/healthz`` answers there. HTTP proxies in the environment are honoured.
"""

from __future__ import annotations

import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parseaddr
from urllib.parse import urlsplit

from rich.console import Console
from rich.markup import escape

from leadflow.kernel.brand import brand, is_local_host, sender_domain
from leadflow.kernel.settings import Settings
from leadflow.messaging.build import dkim
from leadflow.messaging.delivery.transport.smtp import SmtpSettings, parse_smtp_url

__all__ = ["Check", "checks", "report"]

EXAMPLE_ADDRESS = "LEADFLOW_BRAND_ADDRESS='1 Main St, Springfield, IL 62701, USA'"


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str  # what was found; when failing, what to set


def checks(settings: Settings, *, timeout: float) -> list[Check]:
    """Every check, in the order they are listed."""
    quick: list[Callable[[Settings], Check]] = [sender, brand_name, brand_site, postal_address]
    return [
        smtp(settings, timeout),
        *(check(settings) for check in quick),
        *dkim_signatures(settings),
        base_url(settings, timeout),
    ]


def report(settings: Settings, console: Console, *, timeout: float) -> int:
    """Print the checks; the exit status: 0 when every one passes, 1 otherwise."""
    found = checks(settings, timeout=timeout)
    for check in found:
        mark = "[green]✔[/green]" if check.ok else "[red]✘[/red]"
        console.print(f"{mark} {escape(check.name)}: {escape(check.detail)}", soft_wrap=True, highlight=False)
    failing = sum(not check.ok for check in found)
    if failing:
        console.print(
            f"{failing} of {len(found)} checks fail: fix them before sending real email.", soft_wrap=True
        )
        return 1
    console.print(f"all {len(found)} checks pass: ready to send.")
    return 0


def smtp(settings: Settings, timeout: float) -> Check:
    name = "SMTP server"
    if settings.smtp_url is None:
        return Check(
            name,
            False,
            "LEADFLOW_SMTP_URL is not set: email is only written as .eml files to "
            f"{settings.email_outbox_dir}; set it, e.g. smtp://user:pass@smtp.example.com:587?starttls=true",
        )
    try:
        server = parse_smtp_url(settings.smtp_url.get_secret_value())
    except ValueError as exc:
        return Check(name, False, f"LEADFLOW_SMTP_URL: {exc}")
    try:
        greeting = _ehlo(server, timeout)
    except (OSError, smtplib.SMTPException) as exc:
        return Check(name, False, f"{server.display_url} does not answer: {_reason(exc)}")
    return Check(name, True, f"{server.display_url} answers EHLO ({greeting})")


def _ehlo(server: SmtpSettings, timeout: float) -> str:
    """Connect, EHLO, STARTTLS and log in as the URL asks; the server's name from its EHLO reply."""
    context = ssl.create_default_context()
    if not server.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    client = (
        smtplib.SMTP_SSL(server.host, server.port, timeout=timeout, context=context)
        if server.implicit_tls
        else smtplib.SMTP(server.host, server.port, timeout=timeout)
    )
    with client:
        code, reply = client.ehlo()
        if code != 250:
            raise smtplib.SMTPResponseException(code, reply)
        if server.starttls:
            client.starttls(context=context)
            client.ehlo()
        if server.username is not None:
            client.login(server.username, server.password or "")
        return bytes(reply).decode("utf-8", "replace").splitlines()[0].split(" ")[0] or "no name"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, smtplib.SMTPResponseException):
        error = exc.smtp_error
        text = error.decode("utf-8", "replace") if isinstance(error, bytes) else str(error)
        return f"{exc.smtp_code} {text}"
    return str(exc) or type(exc).__name__


def sender(settings: Settings) -> Check:
    name = "sender address"
    address = parseaddr(settings.email_from)[1]
    domain = sender_domain(settings)
    if "@" not in address or not domain or is_local_host(domain):
        return Check(
            name,
            False,
            f"{settings.email_from!r} is not an address at your domain: set LEADFLOW_EMAIL_FROM, "
            'e.g. "Course School <hello@school.example>"',
        )
    return Check(name, True, settings.email_from)


def brand_name(settings: Settings) -> Check:
    found = brand(settings)
    if found.name_from == "sender domain":
        return Check(
            "brand name",
            False,
            f"emails would say {found.name!r} (the sender's domain): set LEADFLOW_BRAND_NAME, or a display "
            'name in LEADFLOW_EMAIL_FROM ("Course School <hello@school.example>")',
        )
    source = "LEADFLOW_BRAND_NAME" if found.name_from == "setting" else "the sender's display name"
    return Check("brand name", True, f"{found.name} (from {source})")


def brand_site(settings: Settings) -> Check:
    found = brand(settings)
    if found.url_from == "base url":
        return Check(
            "brand website",
            False,
            f"emails would link to leadflow itself ({found.url}): set LEADFLOW_BRAND_URL to your website",
        )
    source = "LEADFLOW_BRAND_URL" if found.url_from == "setting" else "the sender's domain"
    return Check("brand website", True, f"{found.url} (from {source})")


def postal_address(settings: Settings) -> Check:
    address = settings.brand_address.strip()
    if not address:
        return Check(
            "postal address",
            False,
            "not set: marketing email must show one (CAN-SPAM) and cannot be published without it; "
            f"set {EXAMPLE_ADDRESS}",
        )
    return Check("postal address", True, " ".join(address.split()))


def dkim_signatures(settings: Settings) -> list[Check]:
    """One check per configured signature (one failing check when there is none)."""
    hint = "make a key with `leadflow email dkim-keygen FILE` and set what it prints"
    try:
        found = dkim.configured(settings)
    except OSError as exc:
        return [Check("DKIM", False, f"the key file cannot be read ({exc}); {hint}")]
    if not found:
        return [Check("DKIM", False, f"not configured: receivers cannot verify the sender; {hint}")]
    return [_signature(selector, domain, key, sender_domain(settings)) for selector, domain, key in found]


def _signature(selector: str, domain: str, key: bytes, from_domain: str) -> Check:
    name = f"DKIM {selector}._domainkey.{domain}"
    try:
        kind = dkim.dns_record(key).split("k=")[1].split(";")[0]
    except ValueError as exc:
        return Check(name, False, f"the private key is unusable: {exc}")
    if domain.lower() != from_domain and not from_domain.endswith("." + domain.lower()):
        return Check(
            name,
            False,
            f"signs for {domain} but mail is from {from_domain or 'no domain'}: DMARC needs the same domain "
            "(or a parent of it); set LEADFLOW_DKIM_DOMAIN",
        )
    return Check(
        name, True, f"{kind} key, aligned with the From domain; publish `leadflow email dkim-record`"
    )


def base_url(settings: Settings, timeout: float) -> Check:
    name = "base URL"
    url = settings.public_url
    host = urlsplit(url).hostname or ""
    if settings.base_url is None or is_local_host(host):
        return Check(
            name,
            False,
            f"{url} is not reachable by recipients (unsubscribe and tracking links point there): set "
            "LEADFLOW_BASE_URL to leadflow's public address, e.g. https://crm.school.example",
        )
    try:
        opener = urllib.request.build_opener()  # the proxies of the environment as it is now
        with opener.open(f"{url}/healthz", timeout=timeout) as answer:
            status = answer.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (OSError, ValueError) as exc:
        return Check(name, False, f"{url} does not answer: {getattr(exc, 'reason', exc)}")
    if status != 200:
        return Check(name, False, f"{url}/healthz answers {status}: is leadflow served there?")
    return Check(name, True, f"{url} answers")
