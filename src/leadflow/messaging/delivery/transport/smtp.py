"""SMTP delivery (stdlib :mod:`smtplib`) through a small pool of persistent connections.

A batch is split into up to ``pool_size`` contiguous shares sent in parallel, each share on one
connection, message after message (no EHLO or login per message). Connections stay open between
batches and are checked with NOOP when they have been idle for a while.

How replies become outcomes:

* 2xx after DATA: ``sent`` (the response carries the server's queue id).
* 5xx at RCPT or DATA: ``bounced`` (permanent, about this recipient or message).
* 4xx: ``deferred``.
* 5xx at MAIL FROM: ``deferred`` -- the *sender* was refused, which says nothing about the recipient
  (a bounce would wrongly blame the contact's address); it is a configuration problem to fix.
* A connection that cannot be opened, upgraded to TLS or logged into (e.g. a wrong password, 535):
  ``deferred`` with the server's reason, for every message of the share -- never ``bounced``.
* A connection lost mid-way (or a 421 "closing"): the message is retried once on a fresh connection;
  if that fails too, it and the rest of its share are ``deferred``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import smtplib
import ssl
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, unquote, urlsplit

from leadflow.messaging.delivery.transport.base import Outcome, Outgoing
from leadflow.messaging.delivery.transport.pipelining import pipelined

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

log = logging.getLogger(__name__)

DEFAULT_PORTS = {"smtp": 25, "smtps": 465}
NOOP_AFTER_SECONDS = 5.0  # a pooled connection idle longer than this is checked with NOOP before use
_BOOLEANS = {"true": True, "1": True, "yes": True, "on": True, "false": False, "0": False, "no": False}
_QUERY_KEYS = {"starttls", "verify"}
_CLOSING = 421  # "service not available, closing transmission channel"


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    implicit_tls: bool = False
    starttls: bool = False
    verify: bool = True
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def display_url(self) -> str:
        """The URL without the password."""
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.username}@" if self.username is not None else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}"


def parse_smtp_url(url: str) -> SmtpSettings:
    """Read ``smtp://[user:pass@]host[:port][?starttls=true][&verify=false]`` or ``smtps://...``."""
    shown = _redact(url)
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"SMTP URL {shown!r} must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError(f"SMTP URL {shown!r} has no host")
    if parts.path not in ("", "/") or parts.fragment:
        raise ValueError(f"SMTP URL {shown!r} must not have a path or fragment")
    try:
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError as error:
        raise ValueError(f"SMTP URL {shown!r} has an invalid port ({error})") from None
    options = _query(parts.query, shown)
    if scheme == "smtps" and options.get("starttls"):
        raise ValueError(f"SMTP URL {shown!r}: smtps:// is already TLS; starttls=true is for smtp://")
    username = unquote(parts.username) if parts.username is not None else None
    password = unquote(parts.password) if parts.password is not None else None
    if (username is None) != (password is None) or username == "":
        raise ValueError(f"SMTP URL {shown!r} needs both a user and a password (user:password@host)")
    return SmtpSettings(
        host=parts.hostname,
        port=port,
        implicit_tls=scheme == "smtps",
        starttls=options.get("starttls", False),
        verify=options.get("verify", True),
        username=username,
        password=password,
    )


def _query(query: str, shown: str) -> dict[str, bool]:
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ValueError(f"SMTP URL {shown!r} has a malformed query") from None
    options: dict[str, bool] = {}
    for key, value in pairs:
        name = key.lower()
        if name not in _QUERY_KEYS:
            raise ValueError(f"SMTP URL {shown!r}: unknown option {key!r} (known: starttls, verify)")
        if value.lower() not in _BOOLEANS:
            raise ValueError(f"SMTP URL {shown!r}: {key} must be true or false, not {value!r}")
        options[name] = _BOOLEANS[value.lower()]
    return options


def _redact(url: str) -> str:
    return re.sub(r"(//[^:/@?#]*):[^@/]*@", r"\1:***@", url)


class _Client(smtplib.SMTP):
    """An SMTP connection that keeps the reply to DATA (it carries the server's queue id)."""

    last_reply: tuple[int, bytes] = (0, b"")

    def data(self, msg: ReadableBuffer | str) -> tuple[int, bytes]:
        self.last_reply = super().data(msg)
        return self.last_reply

    def transaction(self, sender: str, recipient: str, data: bytes, options: list[str]) -> None:
        """Send one message: pipelined when the server offers PIPELINING, else :meth:`sendmail`.

        Raises what :meth:`sendmail` raises for the same replies, so callers handle both alike.
        """
        self.ehlo_or_helo_if_needed()
        if options or not self.has_extn("pipelining"):
            self.sendmail(sender, [recipient], data, options)
            return
        pipelined(self, sender, recipient, data)


class _ClientSSL(smtplib.SMTP_SSL, _Client):
    pass


class _ConnectionLost(Exception):
    """The connection could not be opened, or broke: what was being sent is deferred."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code

    def outcome(self) -> Outcome:
        return Outcome("deferred", self.code, self.reason)


class SmtpTransport:
    """Thread-safe; ``send_many`` may be called from several threads (they share the pool)."""

    def __init__(
        self,
        settings: SmtpSettings,
        *,
        pool_size: int = 4,
        timeout: float = 30.0,
        local_hostname: str | None = None,
    ) -> None:
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.settings = settings
        self.pool_size = pool_size
        self.timeout = timeout
        self._local_hostname = local_hostname
        self._tls = _tls_context(settings.verify)
        self._idle: list[tuple[_Client, float]] = []
        self._open = 0
        self._closed = False
        self._cond = threading.Condition()
        self._executor = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="smtp")
        self.description = _describe_settings(settings, pool_size)

    @classmethod
    def from_url(
        cls, url: str, *, pool_size: int = 4, timeout: float = 30.0, local_hostname: str | None = None
    ) -> SmtpTransport:
        return cls(parse_smtp_url(url), pool_size=pool_size, timeout=timeout, local_hostname=local_hostname)

    def __enter__(self) -> SmtpTransport:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    # -- sending ------------------------------------------------------------------------------

    def send_many(self, messages: Sequence[Outgoing]) -> list[Outcome]:
        if self._closed:
            raise RuntimeError("SmtpTransport is closed")
        if not messages:
            return []
        shares = _split(messages, min(self.pool_size, len(messages)))
        if len(shares) == 1:
            return self._send_share(shares[0])
        futures = [self._executor.submit(self._send_share, share) for share in shares]
        return [outcome for future in futures for outcome in future.result()]

    def _send_share(self, share: Sequence[Outgoing]) -> list[Outcome]:
        """Send ``share`` in order on one connection; always one outcome per message."""
        outcomes: list[Outcome] = []
        client: _Client | None = None
        try:
            for message in share:
                current, client = client, None  # _deliver owns it now (it discards a broken one)
                outcome, client = self._deliver(message, current)
                outcomes.append(outcome)
        except _ConnectionLost as lost:
            outcomes.extend(lost.outcome() for _ in range(len(share) - len(outcomes)))
        except Exception as error:  # a bug must not lose the outcomes of what was already sent
            log.exception("unexpected error while sending email")
            failed = Outcome("deferred", None, f"internal error: {_reason(error)}")
            outcomes.extend(failed for _ in range(len(share) - len(outcomes)))
        finally:
            if client is not None:
                self._release(client)
        return outcomes

    def _deliver(self, message: Outgoing, client: _Client | None) -> tuple[Outcome, _Client]:
        """Send on ``client`` (or a pooled one); after a lost connection, once more on a fresh one."""
        if client is None:
            client = self._checkout()
        try:
            return _attempt(client, message), client
        except _ConnectionLost as lost:
            log.info("SMTP connection lost (%s); reconnecting once", lost.reason)
            self._discard(client)
        client = self._checkout(fresh=True)
        try:
            return _attempt(client, message), client
        except _ConnectionLost:
            self._discard(client)
            raise

    # -- the pool -----------------------------------------------------------------------------

    def _checkout(self, *, fresh: bool = False) -> _Client:
        """A pooled connection (checked with NOOP if idle for long) or a new one.

        ``fresh``: after a connection was lost, the idle ones are probably dead too (a server restart):
        one is closed to make room and a new connection is opened.
        """
        while True:
            with self._cond:
                while not self._idle and self._open >= self.pool_size and not self._closed:
                    self._cond.wait()
                if self._closed:
                    raise _ConnectionLost("transport closed")
                pooled = self._idle.pop() if self._idle else None
                if pooled is None:
                    self._open += 1
            if pooled is None:
                return self._connect_counted()
            client, idle_since = pooled
            if not fresh and (time.monotonic() - idle_since < NOOP_AFTER_SECONDS or _alive(client)):
                return client
            self._discard(client)

    def _connect_counted(self) -> _Client:
        try:
            return self._connect()
        except BaseException:
            self._forget()
            raise

    def _release(self, client: _Client) -> None:
        with self._cond:
            if not self._closed:
                self._idle.append((client, time.monotonic()))
                self._cond.notify()
                return
        _quit(client)
        self._forget()

    def _discard(self, client: _Client) -> None:
        _close_quietly(client)
        self._forget()

    def _forget(self) -> None:
        with self._cond:
            self._open -= 1
            self._cond.notify()

    def _connect(self) -> _Client:
        settings = self.settings
        host, port, helo, timeout = settings.host, settings.port, self._local_hostname, self.timeout
        stage = "connect"
        try:
            if settings.implicit_tls:
                client: _Client = _ClientSSL(host, port, helo, timeout=timeout, context=self._tls)
            else:
                client = _Client(host, port, helo, timeout=timeout)
        except smtplib.SMTPResponseException as error:
            raise _ConnectionLost(f"{stage} failed: {_reply(error)}", error.smtp_code) from None
        except (smtplib.SMTPException, OSError) as error:
            raise _ConnectionLost(f"cannot connect to {settings.display_url}: {_reason(error)}") from None
        self._local_hostname = client.local_hostname  # resolved once, not per connection
        try:
            stage = "EHLO"
            client.ehlo_or_helo_if_needed()
            if settings.starttls:
                stage = "STARTTLS"
                client.starttls(context=self._tls)
                client.ehlo()
            if settings.username is not None:
                stage = "login"
                client.login(settings.username, settings.password or "")
        except smtplib.SMTPResponseException as error:
            _close_quietly(client)
            raise _ConnectionLost(f"{stage} failed: {_reply(error)}", error.smtp_code) from None
        except (smtplib.SMTPException, OSError) as error:
            _close_quietly(client)
            raise _ConnectionLost(f"{stage} failed: {_reason(error)}") from None
        return client

    def close(self) -> None:
        """Quit every pooled connection; connections in use are quit when their share ends."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        self._executor.shutdown(wait=True)
        for client, _ in idle:
            _quit(client)
            self._forget()


def _attempt(client: _Client, message: Outgoing) -> Outcome:
    """One SMTP transaction; raises :class:`_ConnectionLost` when the connection is unusable."""
    ascii_only = message.sender.isascii() and message.recipient.isascii()
    options = [] if ascii_only else ["SMTPUTF8"]
    try:
        client.transaction(message.sender, message.recipient, message.data, options)
    except smtplib.SMTPRecipientsRefused as error:
        code, text = next(iter(error.recipients.values()))
        return _refused(code, f"{code} {_text(text)}")
    except smtplib.SMTPSenderRefused as error:
        if error.smtp_code == _CLOSING:
            raise _ConnectionLost(_reply(error), error.smtp_code) from None
        return Outcome("deferred", error.smtp_code, f"sender {message.sender} refused: {_reply(error)}")
    except smtplib.SMTPResponseException as error:
        return _refused(error.smtp_code, _reply(error))
    except smtplib.SMTPNotSupportedError as error:
        return Outcome("bounced", None, str(error))
    except (smtplib.SMTPException, OSError) as error:
        raise _ConnectionLost(f"connection lost: {_reason(error)}") from None
    except Exception as error:  # the connection is in an unknown state: treat it as lost
        log.exception("unexpected error in an SMTP transaction")
        raise _ConnectionLost(f"internal error: {_reason(error)}") from None
    code, text = client.last_reply
    return Outcome("sent", code, f"{code} {_text(text)}")


def _refused(code: int, response: str) -> Outcome:
    if code == _CLOSING:
        raise _ConnectionLost(response, code)
    return Outcome("bounced" if 500 <= code < 600 else "deferred", code, response)


def _alive(client: _Client) -> bool:
    try:
        return client.noop()[0] == 250
    except (smtplib.SMTPException, OSError):
        return False


def _quit(client: _Client) -> None:
    with contextlib.suppress(smtplib.SMTPException, OSError):
        client.quit()
    _close_quietly(client)


def _close_quietly(client: _Client) -> None:
    with contextlib.suppress(OSError):
        client.close()


def _split(messages: Sequence[Outgoing], count: int) -> list[Sequence[Outgoing]]:
    """``count`` contiguous shares whose sizes differ by at most one."""
    size, extra = divmod(len(messages), count)
    shares: list[Sequence[Outgoing]] = []
    start = 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        shares.append(messages[start:end])
        start = end
    return shares


def _tls_context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _describe_settings(settings: SmtpSettings, pool_size: int) -> str:
    notes = [f"pool {pool_size}"]
    if settings.starttls:
        notes.insert(0, "STARTTLS")
    if (settings.starttls or settings.implicit_tls) and not settings.verify:
        notes.append("certificate not verified")
    return f"SMTP {settings.display_url} ({', '.join(notes)})"


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw


def _reply(error: smtplib.SMTPResponseException) -> str:
    return f"{error.smtp_code} {_text(error.smtp_error)}"


def _reason(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
