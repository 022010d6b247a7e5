"""A real SMTP server for tests (aiosmtpd on 127.0.0.1, an ephemeral port, its own thread).

``tls``: ``"none"`` (plain), ``"starttls"`` (STARTTLS offered and required before MAIL) or ``"implicit"``
(TLS from the first byte, i.e. smtps). TLS uses a self-signed certificate made on the fly, so clients
connect with ``verify=false`` (the :attr:`SmtpPeer.url` says so).

``auth=(user, password)``: MAIL FROM is refused with ``530`` until the session logged in with exactly
those credentials (PLAIN or LOGIN); wrong ones get ``535``. aiosmtpd only offers AUTH on a connection
it knows to be encrypted, and it only knows about STARTTLS, so:

* ``"starttls"``: AUTH is offered after STARTTLS only (``auth_require_tls`` stays on);
* ``"implicit"``: the whole connection is TLS, so AUTH is allowed from the start;
* ``"none"``: AUTH over plain text is allowed -- the only way to test login without TLS.

Enforcement is done in ``handle_MAIL`` rather than with aiosmtpd's ``auth_required`` because that
option warns (``UserWarning``) whenever ``auth_require_tls`` is off, which the test suite turns into
errors.

``reject={"x@example.com": (550, "5.1.1 no such user")}`` answers RCPT TO for that address with that
reply (any code: 550 bounces, 450 defers).

``pipelining=True`` offers PIPELINING (RFC 2920) in the EHLO reply (aiosmtpd reads commands in order
either way) and counts, in :attr:`SmtpPeer.pipelined`, the MAIL commands whose RCPT TO had already
arrived with them: the proof that a client really pipelined.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.policy
import ipaddress
import ssl
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

TlsMode = Literal["none", "starttls", "implicit"]
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: list[str]
    data: bytes  # exactly as the client sent it (dot-unstuffed, CRLF line endings kept)


class _Handler:
    def __init__(self, peer: SmtpPeer) -> None:
        self.peer = peer

    async def handle_MAIL(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.peer.pipelining and b"RCPT TO" in bytes(getattr(server._reader, "_buffer", b"")):
            self.peer._count_pipelined()
        if self.peer.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        rejection = self.peer.reject.get(address.lower())
        if rejection is not None:
            return f"{rejection[0]} {rejection[1]}"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        assert envelope.original_content is not None
        number = self.peer._record(
            Received(str(envelope.mail_from), list(envelope.rcpt_tos), bytes(envelope.original_content)),
            session.peer,
        )
        return f"250 2.0.0 OK queued as peer-{number}"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        expected = self.peer.auth
        good = (
            expected is not None
            and isinstance(data, LoginPassword)
            and (data.login, data.password) == (expected[0].encode(), expected[1].encode())
        )
        return AuthResult(success=good, auth_data=data if good else None, handled=False)


class _PipeliningHandler(_Handler):
    async def handle_EHLO(  # noqa: N802
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        return [*responses[:-1], "250-PIPELINING", responses[-1]]


class _Controller(Controller):
    """Binds port 0 and learns the real port before aiosmtpd's start-up probe connects."""

    def _trigger_server(self) -> None:
        assert isinstance(self.server, asyncio.Server)
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]


class SmtpPeer:
    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        tls: TlsMode = "none",
        reject: Mapping[str, tuple[int, str]] | None = None,
        port: int = 0,
        pipelining: bool = False,
    ) -> None:
        """``port``: 0 for an ephemeral one; a known port to restart a server where a stopped one was."""
        self.auth = auth
        self.tls = tls
        self.reject = {address.lower(): reply for address, reply in (reject or {}).items()}
        self.port = port
        self.pipelining = pipelining
        self.pipelined = 0
        self._messages: list[Received] = []
        self._clients: set[object] = set()
        self._cond = threading.Condition()
        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        self._controller: _Controller | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> SmtpPeer:
        handler = _PipeliningHandler(self) if self.pipelining else _Handler(self)
        context = self._tls_context() if self.tls != "none" else None
        options: dict[str, Any] = {"server_hostname": "smtp-peer.test", "ready_timeout": 5.0}
        if self.auth is not None:
            options["authenticator"] = handler.authenticate
            options["auth_require_tls"] = self.tls == "starttls"
        if self.tls == "starttls":
            options.update(tls_context=context, require_starttls=True)
        elif self.tls == "implicit":
            options["ssl_context"] = context
        self._controller = _Controller(handler, hostname=HOST, port=self.port, **options)
        self._controller.start()
        self.port = self._controller.port
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
        if self._tempdir is not None:
            self._tempdir.cleanup()
            self._tempdir = None

    def __enter__(self) -> SmtpPeer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        scheme = "smtps" if self.tls == "implicit" else "smtp"
        credentials = ""
        if self.auth is not None:
            credentials = f"{quote(self.auth[0], safe='')}:{quote(self.auth[1], safe='')}@"
        query = "starttls=true&verify=false" if self.tls == "starttls" else "verify=false"
        return f"{scheme}://{credentials}{HOST}:{self.port}?{query}"

    # -- what arrived -------------------------------------------------------------------------

    @property
    def messages(self) -> list[Received]:
        with self._cond:
            return list(self._messages)

    @property
    def connections(self) -> int:
        """How many distinct client connections delivered at least one message."""
        with self._cond:
            return len(self._clients)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(f"{len(self._messages)} of {count} messages arrived in {timeout} s")
            return list(self._messages)

    def parsed(self) -> list[EmailMessage]:
        parser = BytesParser(policy=email.policy.default)
        return [parser.parsebytes(message.data) for message in self.messages]

    def _count_pipelined(self) -> None:
        with self._cond:
            self.pipelined += 1

    def _record(self, received: Received, client: object) -> int:
        with self._cond:
            self._messages.append(received)
            self._clients.add(client)
            self._cond.notify_all()
            return len(self._messages)

    # -- TLS ----------------------------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext:
        self._tempdir = tempfile.TemporaryDirectory(prefix="smtp-peer-")
        cert, key = _self_signed(Path(self._tempdir.name))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        return context


def _self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for localhost / 127.0.0.1 valid for a day, with its key (EC: quick to make)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(HOST))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
