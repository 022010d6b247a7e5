"""Many guarded HTTP/1.1 POSTs at once, on an event loop of their own: the webhook deliverer's sender.

Why not httpx/httpcore here: a delivery's exchange through httpcore's pool cost ~0.5 ms of CPU (h11's
pure-Python parsing and validation, the pool's locks), and eight sender threads spent much of their time
queued on the pool's lock and the GIL (docs/benchmarks.md, "Outgoing webhooks"). This sender writes the
request line and headers itself, parses the answer with ``httptools`` (llhttp, the parser uvicorn
uses), and runs every exchange of a batch concurrently on one ``uvloop`` loop in a thread. httpx stays
the reference: ``tests/unit/kernel/test_netguard_post.py`` sends the same requests both ways to peers
that answer in every framing (length, chunked, until close) and requires the same answers.

What it does, and no more: ``POST`` with the caller's headers and body; ``Host`` and ``Content-Length``
are its own. No redirect is followed, no proxy used, no cookie kept, userinfo in a URL is ignored. The
network guard (:mod:`leadflow.kernel.netguard`) holds as in the other clients: the literal host first,
then the name is resolved once, refused if any address is blocked, and a checked address is connected
to (TLS verifies the name, with ``httpx``'s default trust). Connections are kept alive per origin for
:data:`KEEPALIVE` seconds; when a kept connection turns out closed before a byte of the answer, the
request is sent again on the next one, or a new one (webhooks are at-least-once, receivers
de-duplicate); a new connection closed so is an error. At most
``body_limit`` bytes of an answer are read; a longer answer's connection is closed. An answer whose head
(with any interim ``1xx`` answers) passes :data:`HEAD_LIMIT` bytes is a protocol error. At most
:data:`MAX_KEPT` idle connections are kept in all.

Outcomes: an :class:`Answer`, or an exception: :class:`~leadflow.kernel.netpolicy.Blocked`,
:class:`InvalidRequest` (the URL or a header), :class:`PostTimeout` (connect, send and answer together
beyond the timeout), :class:`ConnectError` or :class:`ProtocolError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import httptools
import httpx
import uvloop

from leadflow.kernel.netpolicy import Blocked, Policy, addresses_of

KEEPALIVE = 5.0  # seconds a connection is kept idle
MAX_KEPT = 100  # idle connections kept in all (a batch to many receivers does not hold a socket each)
BODY_LIMIT = 64 * 1024
HEAD_LIMIT = 64 * 1024  # bytes before an answer's final head is whole (interim answers included)
_FIELD = re.compile(r"[^\r\n\0]*\Z")
_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")


class PostError(Exception):
    """A POST that did not come to an answer."""


class InvalidRequest(PostError):
    """The URL or a header cannot be sent."""


class PostTimeout(PostError):
    """No whole answer within the timeout."""


class ConnectError(PostError):
    """No connection to any checked address."""


class ProtocolError(PostError):
    """The peer's answer was not HTTP/1.1, or the connection ended before it was whole."""


@dataclass(frozen=True)
class Post:
    url: str
    headers: Sequence[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class Answer:
    """``headers``: names in lower case, repeated ones joined with ``", "``; ``body``: at most the limit."""

    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(frozen=True)
class Sent:
    """What became of one :class:`Post`, and how long it took (seconds)."""

    result: Answer | Exception
    seconds: float


@dataclass(frozen=True)
class _Target:
    origin: tuple[str, str, int]  # scheme, host, port
    head: bytes  # the request line and the Host header


@functools.lru_cache(maxsize=4096)
def _target(url: str, policy: Policy) -> _Target:
    """Where ``url`` goes and its request's head, once its literal host passed ``policy`` (kept: a
    batch names the same few endpoints again and again; parsing was a fifth of a delivery's CPU)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise InvalidRequest(f"invalid URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidRequest(f"invalid URL: Request URL has an unsupported protocol or no host: {url!r}")
    refused = policy.literal_refusal(parsed.host)
    if refused is not None:
        raise Blocked(refused)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    host = parsed.raw_host.decode("ascii")
    netloc = f"[{host}]" if ":" in host else host
    if parsed.port is not None:
        netloc += f":{parsed.port}"
    head = b"POST " + parsed.raw_path + b" HTTP/1.1\r\nhost: " + netloc.encode("ascii") + b"\r\n"
    return _Target((parsed.scheme, host, port), head)


def _request(target: _Target, post: Post) -> bytes:
    lines = [target.head]
    for name, value in post.headers:
        if not _NAME.match(name) or not _FIELD.match(value) or name.lower() in ("host", "content-length"):
            raise InvalidRequest(f"invalid header: {name!r}")
        lines.append(f"{name}: {value}\r\n".encode("latin-1"))
    lines.append(f"content-length: {len(post.body)}\r\n\r\n".encode("ascii"))
    lines.append(post.body)
    return b"".join(lines)


class _Connection(asyncio.Protocol):
    """One kept-alive HTTP/1.1 connection; one exchange at a time."""

    def __init__(self, body_limit: int) -> None:
        self.body_limit = body_limit
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self._waiter: asyncio.Future[Answer] | None = None
        self._parser: Any = None
        self._received = False
        self._head_size = 0
        self._status: int | None = None
        self._headers: dict[str, str] = {}
        self._headers_done = False
        self._chunked_or_sized = False
        self._body: list[bytes] = []
        self._size = 0

    # --- asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not asyncio.Transport's subclasses

    def data_received(self, data: bytes) -> None:
        if self._parser is None:  # nothing asked: a peer talking out of turn is not reused
            self.close()
            return
        self._received = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolError("ProtocolError: the peer switched protocols"))
            return
        except httptools.HttpParserError as exc:
            self._fail(ProtocolError(f"ProtocolError: {exc}"))
            return
        if self._parser is not None and not self._headers_done:  # still no final head
            self._head_size += len(data)
            if self._head_size > HEAD_LIMIT:
                self._fail(ProtocolError(f"ProtocolError: the answer's head passed {HEAD_LIMIT} bytes"))

    def eof_received(self) -> bool:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._waiter is None or self._waiter.done():
            return
        if self._status is not None and self._headers_done and not self._chunked_or_sized:
            self._finish(reusable=False)  # an answer framed by the connection's end
            return
        if self._received:
            self._fail(ProtocolError("ProtocolError: the connection closed before the whole answer"))
        else:
            self._fail(_Stale("ProtocolError: the connection closed before an answer"))

    # --- httptools callbacks -------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        self._headers[key] = f"{self._headers[key]}, {text}" if key in self._headers else text

    def on_headers_complete(self) -> None:
        self._status = self._parser.get_status_code()
        self._headers_done = True
        self._chunked_or_sized = "content-length" in self._headers or "chunked" in self._headers.get(
            "transfer-encoding", ""
        )

    def on_body(self, body: bytes) -> None:
        if self._size < self.body_limit:
            self._body.append(body[: self.body_limit - self._size])
        self._size += len(body)
        if self._size >= self.body_limit:  # enough read: the rest is not waited for
            self._finish(reusable=False)

    def on_message_complete(self) -> None:
        if self._parser is None:  # finished already (the body limit)
            return
        if self._status is not None and self._status < 200:  # an interim answer (100 Continue …)
            self._start_answer()
            return
        self._finish(reusable=bool(self._parser.should_keep_alive()))

    # --- the exchange --------------------------------------------------------------------------------

    def _start_answer(self) -> None:
        self._status = None
        self._headers = {}
        self._headers_done = False
        self._chunked_or_sized = False
        self._body = []
        self._size = 0

    async def exchange(self, request: bytes) -> Answer:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        self._waiter = loop.create_future()
        self._received = False
        self._head_size = 0
        self._parser = httptools.HttpResponseParser(self)
        self._start_answer()
        self.transport.write(request)
        try:
            return await self._waiter
        finally:
            self._waiter = None

    def _finish(self, *, reusable: bool) -> None:
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        self._parser = None
        if not reusable:
            self.close()
        assert self._status is not None
        waiter.set_result(Answer(self._status, self._headers, b"".join(self._body)))

    def _fail(self, exc: Exception) -> None:
        self._parser = None
        self.close()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)

    def close(self, *, abort: bool = False) -> None:
        self.closed = True
        if self.transport is not None:
            if abort:
                self.transport.abort()
            else:
                self.transport.close()


class _Stale(ProtocolError):
    """A connection closed before a byte of the answer came: a kept one is replaced."""


class GuardedPoster:
    """Sends batches of POSTs (:meth:`send`), ``concurrency`` at a time, under ``policy``.

    Thread-safe; the loop's thread is started on first use and stopped by :meth:`close`."""

    def __init__(
        self,
        policy: Policy,
        *,
        concurrency: int = 8,
        ssl_context: ssl.SSLContext | None = None,
        body_limit: int = BODY_LIMIT,
    ) -> None:
        self.policy = policy
        self.concurrency = concurrency
        self.body_limit = body_limit
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        """Whether the loop's thread runs (started by a send, ended by :meth:`close`)."""
        return self._thread is not None and self._thread.is_alive()

    def send(self, posts: Sequence[Post], timeout: float) -> list[Sent]:
        """Send every post (at most :attr:`concurrency` at once); one :class:`Sent` each, in order."""
        return self.start(posts, timeout).result()

    def start(self, posts: Sequence[Post], timeout: float) -> Future[list[Sent]]:
        """:meth:`send`, answered by the future (the caller may do other work while it waits)."""
        if not posts:
            done: Future[list[Sent]] = Future()
            done.set_result([])
            return done
        return asyncio.run_coroutine_threadsafe(self._send_all(posts, timeout), self._running_loop())

    def close(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        if not thread.is_alive():
            loop.close()

    async def _shutdown(self) -> None:
        for kept in self._idle.values():
            for connection in kept:
                connection.close(abort=True)  # no TLS close_notify exchange to wait for
        self._idle.clear()
        await asyncio.sleep(0)  # the transports' closing callbacks run

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = uvloop.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="leadflow-poster", daemon=True)
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def _sweep(self) -> None:
        """Forget kept connections the peers closed or that idled out."""
        now = time.monotonic()
        for origin, kept in list(self._idle.items()):
            alive = [c for c in kept if not c.closed and now - c.idle_since < KEEPALIVE]
            for connection in kept:
                if connection not in alive:
                    connection.close()
            if alive:
                self._idle[origin] = alive
            else:
                del self._idle[origin]

    async def _send_all(self, posts: Sequence[Post], timeout: float) -> list[Sent]:
        self._sweep()
        gate = asyncio.Semaphore(self.concurrency)

        async def one(post: Post) -> Sent:
            async with gate:
                started = time.perf_counter()
                try:
                    async with asyncio.timeout(timeout):
                        result: Answer | Exception = await self._post(post)
                except TimeoutError:
                    result = PostTimeout(f"no answer within {timeout:g} s")
                except (PostError, Blocked) as exc:
                    result = exc
                except Exception as exc:  # one bad post must not stop the batch: its caller records it
                    result = exc
                return Sent(result, time.perf_counter() - started)

        return list(await asyncio.gather(*(one(post) for post in posts)))

    async def _post(self, post: Post) -> Answer:
        target = _target(post.url, self.policy)
        request = _request(target, post)
        while True:
            connection, kept = await self._checkout(target.origin)
            try:
                answer = await connection.exchange(request)
            except _Stale:
                if kept:
                    continue  # the peer had closed it while it was idle: once more on a new one
                raise
            except BaseException:  # a timeout (cancelled) or an error: the connection is not reused
                connection.close()
                raise
            if connection.closed:
                pass
            elif sum(len(kept) for kept in self._idle.values()) >= MAX_KEPT:
                connection.close()
            else:
                connection.idle_since = time.monotonic()
                self._idle.setdefault(target.origin, []).append(connection)
            return answer

    async def _checkout(self, origin: tuple[str, str, int]) -> tuple[_Connection, bool]:
        kept = self._idle.get(origin)
        now = time.monotonic()
        while kept:
            connection = kept.pop()
            if not connection.closed and now - connection.idle_since < KEEPALIVE:
                return connection, True
            connection.close()
        return await self._connect(origin), False

    async def _connect(self, origin: tuple[str, str, int]) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise ConnectError(f"ConnectError: {host}: {exc}") from None
        addresses = addresses_of(infos)
        self.policy.check_all(host, addresses)
        secure = scheme == "https"
        if secure and self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        failure: OSError | None = None
        for address in addresses:
            try:
                _, connection = await loop.create_connection(
                    lambda: _Connection(self.body_limit),
                    str(address),
                    port,
                    ssl=self._ssl if secure else None,
                    server_hostname=host if secure else None,
                )
                return connection
            except ssl.SSLError as exc:
                raise ConnectError(f"ConnectError: TLS: {exc}") from None
            except OSError as exc:
                failure = exc
        raise ConnectError(f"ConnectError: {failure or 'no address'}")
