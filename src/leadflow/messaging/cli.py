"""``leadflow email ...``: make a DKIM key and show the DNS record receivers look it up in; and
``leadflow doctor``: what real sending still lacks."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Literal

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from leadflow.kernel.commands import console
from leadflow.kernel.errors import Invalid, Misconfigured
from leadflow.kernel.settings import Settings
from leadflow.messaging.build.dkim import configured, dns_record, dns_strings, load_private_key
from leadflow.messaging.doctor import report

email_app = typer.Typer(help="Email: DKIM keys and their DNS records.", no_args_is_help=True)
root_app = typer.Typer()
"""Merged into the ``leadflow`` command itself: ``leadflow doctor``."""


@root_app.command()
def doctor(
    timeout: float = typer.Option(3.0, min=0.1, help="seconds to wait for the SMTP server and the base URL"),
) -> None:
    """List what real sending still lacks (SMTP, sender, brand, postal address, DKIM, a reachable base
    URL), each with what to set; exit status 1 while anything does."""
    raise typer.Exit(report(Settings(), console, timeout=timeout))


@email_app.command("dkim-keygen")
def dkim_keygen(
    out: Path = typer.Argument(..., help="where to write the private key (PEM); never overwritten"),
    kind: str = typer.Option("rsa", "--type", help="rsa (what every receiver verifies) or ed25519"),
    bits: int = typer.Option(2048, help="RSA key size: 2048 (RFC 8301's advice) or more"),
    selector: str = typer.Option("leadflow", help="the selector to publish the key under"),
) -> None:
    """Write a new DKIM private key (readable by its owner only) and print the settings and DNS record."""
    if kind not in ("rsa", "ed25519"):
        raise Invalid("--type must be rsa or ed25519")
    if kind == "rsa" and not 2048 <= bits <= 8192:
        raise Invalid("--bits must be between 2048 and 8192")
    pem = _new_key("rsa" if kind == "rsa" else "ed25519", bits)
    try:
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise FileExistsError(errno.EEXIST, "exists: not overwritten", str(out)) from None
    except OSError as err:
        raise OSError(err.errno, f"cannot be written: {err.strerror}", str(out)) from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    console.print(f"Wrote {out}. Set:")
    console.print(f"  LEADFLOW_DKIM_SELECTOR={selector}", soft_wrap=True)
    console.print(f"  LEADFLOW_DKIM_PRIVATE_KEY_FILE={out.resolve()}", soft_wrap=True)
    console.print("and publish (domain: LEADFLOW_DKIM_DOMAIN, else that of LEADFLOW_EMAIL_FROM):")
    console.print(f"  {selector}._domainkey.<domain>  TXT  {dns_strings(dns_record(pem))}", soft_wrap=True)


@email_app.command("dkim-record")
def dkim_record() -> None:
    """The TXT record to publish for each configured key (LEADFLOW_DKIM_*, LEADFLOW_DKIM_SECOND_*)."""
    try:
        found = configured(Settings())
    except OSError as err:
        raise Misconfigured(f"the DKIM key file cannot be read: {err}") from None
    if not found:
        raise Misconfigured(
            "DKIM is off: set LEADFLOW_DKIM_SELECTOR and a key, "
            "LEADFLOW_DKIM_PRIVATE_KEY or LEADFLOW_DKIM_PRIVATE_KEY_FILE"
        )
    for selector, domain, key in found:
        try:
            record = dns_record(load_private_key(key.decode("ascii")))
        except (ValueError, UnicodeDecodeError) as err:
            raise Misconfigured(f"the DKIM key of selector {selector} cannot be used: {err}") from None
        console.print(f"{selector}._domainkey.{domain}  TXT  {dns_strings(record)}", soft_wrap=True)


def _new_key(kind: Literal["rsa", "ed25519"], bits: int) -> bytes:
    key = (
        rsa.generate_private_key(public_exponent=65537, key_size=bits)
        if kind == "rsa"
        else ed25519.Ed25519PrivateKey.generate()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
