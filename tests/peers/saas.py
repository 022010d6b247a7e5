"""The shared base of the vendor test peers (HubSpot, Salesforce, ActiveCampaign, Pipedrive, Mailchimp, Kit).

A peer is a real HTTP/1.1 server on 127.0.0.1 (an ephemeral port; TLS with a self-signed certificate when
the client insists on ``https://``) that speaks a vendor's documented endpoints, keeps state, and injects
the failures a connector has to survive. A subclass declares its endpoints::

    class Acme(SaasPeer):
        @route("GET", r"/api/v1/things/(?P<thing_id>\\d+)")
        def get_thing(self, call: Call, thing_id: str) -> Answer:
            return Answer(200, {"id": int(thing_id)})

and overrides the vendor's habits: :meth:`SaasPeer.auth` (401/403), :meth:`SaasPeer.limited` (its 429 and
rate accounting), :meth:`SaasPeer.rate_headers` (added to every answer), :meth:`SaasPeer.not_found`,
:meth:`SaasPeer.too_many` (the answer to an injected 429), :meth:`SaasPeer.server_error` (an injected 5xx,
with :attr:`SaasPeer.error_statuses`).

Each request, in order: ``faults.down`` → connection reset (nothing recorded); recorded in ``calls``;
``timeout_rate`` → hang ``hang_s`` then drop the connection; ``burst_429`` → :meth:`too_many`;
``error_rate`` → :meth:`server_error`; :meth:`auth`; :meth:`limited`; the route (or :meth:`not_found`).
``auth``, ``limited`` and the handlers run holding ``peer.lock``, so handlers need no locking of their own;
a test reads or changes the peer's state under the same lock.

Faults are drawn from one ``random.Random(seed)``: the same sequence of requests meets the same faults.
"""

from __future__ import annotations

import atexit
import contextlib
import email.utils
import functools
import json
import random
import re
import shutil
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

Handler = Callable[..., "Answer"]


@dataclass
class Call:
    """One request as received (header names lower-cased; ``query`` as ``parse_qs`` gives it)."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    status: int = 0  # the status answered, once answered; 0 while pending or when the connection was dropped
    fault: str = ""  # "timeout", "429" or "5xx" when an injected fault answered it
    meta: dict[str, Any] = field(default_factory=dict)  # scratch for a peer (e.g. what limited() counted)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def arg(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default


@dataclass
class Answer:
    """What a handler returns: ``body`` is sent as JSON unless it is bytes; ``None`` sends no body."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


class Faults:
    """Injected failures, seeded (reproducible): set at any time, thread-safe."""

    def __init__(self, seed: int = 0) -> None:
        self.error_rate: float = 0.0  # share of requests answered 5xx (SaasPeer.error_statuses)
        self.timeout_rate: float = 0.0  # share of requests that hang `hang_s` s, then drop the connection
        self.hang_s: float = 2.0
        self.counts: dict[str, int] = {"5xx": 0, "timeout": 0, "429": 0, "down": 0}  # faults injected so far
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._burst = 0
        self._burst_retry_after = 1
        self._down = False
        self._lose: list[tuple[str, str, int]] = []  # (method, path end, count): applied, answer lost

    def lose_answer(self, n: int = 1, path: str = "", method: str = "") -> None:
        """The next ``n`` requests (of ``method``, any if empty) whose path ends with ``path`` are
        applied, then the connection is dropped before the answer: the client sees a lost answer (a
        timeout after the vendor wrote)."""
        with self._lock:
            self._lose.append((method.upper(), path, n))

    def _losing(self, method: str, path: str) -> bool:
        with self._lock:
            for index, (verb, end, left) in enumerate(self._lose):
                if path.endswith(end) and verb in ("", method):
                    if left <= 1:
                        del self._lose[index]
                    else:
                        self._lose[index] = (verb, end, left - 1)
                    self.counts["lost"] = self.counts.get("lost", 0) + 1
                    return True
        return False

    def burst_429(self, n: int, retry_after: int = 1) -> None:
        """The next ``n`` requests get the vendor's 429 with ``Retry-After: retry_after``."""
        with self._lock:
            self._burst, self._burst_retry_after = n, retry_after

    def down(self, on: bool) -> None:
        """While on, every connection (new or kept alive) is reset before any answer."""
        with self._lock:
            self._down = on

    @property
    def is_down(self) -> bool:
        return self._down

    def clear(self) -> None:
        """No more faults (rates 0, no burst, up); the counts are kept."""
        with self._lock:
            self.error_rate = self.timeout_rate = 0.0
            self._burst, self._down = 0, False
            self._lose = []

    def _count(self, kind: str) -> None:
        with self._lock:
            self.counts[kind] += 1

    def _draw(self, statuses: tuple[int, ...]) -> tuple[str, int]:
        """The fault for one request: ("", 0), ("timeout", 0), ("429", retry_after) or ("5xx", status).
        One draw per request, whatever the rates, so a sequence stays reproducible as rates change."""
        with self._lock:
            roll = self._random.random()
            status = self._random.choice(statuses)
            if roll < self.timeout_rate:
                self.counts["timeout"] += 1
                return "timeout", 0
            if self._burst > 0:
                self._burst -= 1
                self.counts["429"] += 1
                return "429", self._burst_retry_after
            if roll < self.timeout_rate + self.error_rate:
                self.counts["5xx"] += 1
                return "5xx", status
            return "", 0


class WindowLimit:
    """``limit`` requests per ``window_s`` seconds on ``clock`` (seconds, default ``time.monotonic``; a test
    passes a virtual clock's ``monotonic``). Fixed windows start at the first request after the previous
    window ended; ``rolling=True`` counts the requests of the last ``window_s`` seconds instead.
    Thread-safe."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        rolling: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self.rolling = rolling
        self.clock = clock
        self._lock = threading.Lock()
        self._start = 0.0
        self._count = 0
        self._started = False
        self._times: deque[float] = deque()

    def take(self) -> tuple[bool, int, float]:
        """Count one request if the window allows it: (allowed, remaining after it, seconds until reset)."""
        with self._lock:
            now = self.clock()
            used, reset_s = self._used(now)
            if used >= self.limit:
                return False, 0, reset_s
            if self.rolling:
                self._times.append(now)
                reset_s = self._times[0] + self.window_s - now
            else:
                if not self._started or now >= self._start + self.window_s:
                    self._start, self._count, self._started = now, 0, True
                    reset_s = self.window_s
                self._count += 1
            return True, self.limit - used - 1, reset_s

    def peek(self) -> tuple[int, float]:
        """(remaining, seconds until reset) without counting a request."""
        with self._lock:
            used, reset_s = self._used(self.clock())
            return max(self.limit - used, 0), reset_s

    def reset(self) -> None:
        with self._lock:
            self._started, self._count = False, 0
            self._times.clear()

    def _used(self, now: float) -> tuple[int, float]:
        if self.rolling:
            while self._times and self._times[0] <= now - self.window_s:
                self._times.popleft()
            reset_s = self._times[0] + self.window_s - now if self._times else self.window_s
            return len(self._times), reset_s
        if not self._started or now >= self._start + self.window_s:
            return 0, self.window_s
        return self._count, self._start + self.window_s - now


def route(method: str, pattern: str) -> Callable[[Handler], Handler]:
    r"""Declare a handler of a :class:`SaasPeer` subclass: ``pattern`` is a regex matched against the
    whole path (no query); its named groups are passed as keyword arguments. The first route declared
    that matches wins (declare ``/things/describe`` before ``/things/(?P<id>\w+)``)."""

    def mark(func: Handler) -> Handler:
        func.__dict__.setdefault("_saas_routes", []).append((method.upper(), pattern))
        return func

    return mark


@dataclass(frozen=True)
class TlsFiles:
    ca_file: str  # the CA certificate (PEM) a client trusts
    cert_file: str  # the server certificate (PEM), signed by that CA, for 127.0.0.1 and localhost
    key_file: str


_TLS_FOLDERS: list[Path] = []


def remove_tls_files() -> None:
    """Remove the files :func:`tls_files` made in this process (idempotent; the next call makes new ones)."""
    tls_files.cache_clear()
    while _TLS_FOLDERS:
        shutil.rmtree(_TLS_FOLDERS.pop(), ignore_errors=True)


@functools.cache
def tls_files() -> TlsFiles:
    """A CA and a server certificate for 127.0.0.1/localhost, made once per test run in a temp dir
    (a CA plus leaf rather than one self-signed leaf, so strict X.509 verification accepts it too)."""
    now = datetime.now(UTC)
    start, end = now - timedelta(days=1), now + timedelta(days=30)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "leadflow test peers CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(IPv4Address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    folder = Path(tempfile.mkdtemp(prefix="leadflow-peers-tls-"))
    _TLS_FOLDERS.append(folder)
    atexit.register(remove_tls_files)  # a bench's process; the tests' end their session with it
    files = TlsFiles(str(folder / "ca.pem"), str(folder / "server.pem"), str(folder / "server.key"))
    Path(files.ca_file).write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    Path(files.cert_file).write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    Path(files.key_file).write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return files


def _reset(sock: socket.socket) -> None:
    """Close with an RST (SO_LINGER 0): the client sees 'connection reset'."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        socket.socket.close(sock)  # plain close, even for an SSLSocket: no TLS close_notify first


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, peer: SaasPeer, context: ssl.SSLContext | None) -> None:
        self.peer = peer
        self.context = context
        super().__init__(("127.0.0.1", 0), _handler_class(peer))

    def process_request(self, request: Any, client_address: Any) -> None:
        if self.peer.faults.is_down:
            self.peer.faults._count("down")
            _reset(request)
            return
        super().process_request(request, client_address)

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.context is None:
            super().finish_request(request, client_address)
            return
        try:  # the handshake in the connection's own thread, not the accept loop
            wrapped = self.context.wrap_socket(request, server_side=True)
        except OSError:  # a client that does not trust the certificate, or went away
            return
        try:
            super().finish_request(wrapped, client_address)
        finally:
            with contextlib.suppress(OSError):
                wrapped.close()  # the base class closes the raw socket, which the wrapper took over


class SaasPeer:
    """Base class of a vendor peer: ``with Peer(tls=..., seed=..., clock=...) as peer:`` serves at
    ``peer.url``. ``clock`` (seconds) drives rate windows, ``now`` (aware datetimes, default the wall
    clock) the records' timestamps: a test with a virtual clock passes ``clock.monotonic`` and
    ``clock.now``."""

    error_statuses: tuple[int, ...] = (500, 502, 503)  # the injected 5xx, by the vendor's habit
    _routes: list[tuple[str, re.Pattern[str], str]] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        routes: list[tuple[str, re.Pattern[str], str]] = []
        for klass in cls.__mro__:  # a subclass's routes before its bases', each class's in declaration order
            for name, value in vars(klass).items():
                for method, pattern in getattr(value, "_saas_routes", ()):
                    routes.append((method, re.compile(pattern), name))
        cls._routes = routes

    def __init__(
        self,
        *,
        tls: bool = False,
        seed: int = 0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] | None = None,
    ) -> None:
        self.tls = tls
        self.clock = clock
        self.now: Callable[[], datetime] = now or (lambda: datetime.now(UTC))
        self.faults = Faults(seed)
        self.calls: list[Call] = []
        self.lock = threading.RLock()
        self.in_flight = 0  # requests read and not yet answered, counted before they wait for `lock`
        self._counting = threading.Lock()  # guards `calls` appends and `in_flight`, never held long
        self.ca_file: str | None = None
        context = None
        if tls:
            files = tls_files()
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(files.cert_file, files.key_file)
            self.ca_file = files.ca_file
        self._stopping = threading.Event()
        self._server = _Server(self, context)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"peer-{type(self).__name__}",
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting this peer's certificate: httpx ``verify=peer.ssl_context()``."""
        if self.ca_file is None:
            raise RuntimeError("this peer serves plain HTTP (tls=False)")
        return ssl.create_default_context(cafile=self.ca_file)

    def requests_session(self) -> requests.Session:
        """A ``requests.Session`` trusting this peer (for simple-salesforce's ``session=``): ``verify`` is
        the CA file and ``trust_env`` off, since ``REQUESTS_CA_BUNDLE`` in the environment would otherwise
        win over ``session.verify``."""
        session = requests.Session()
        session.trust_env = False
        if self.ca_file is not None:
            session.verify = self.ca_file
        return session

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # ---- what a test asks -------------------------------------------------------------------------
    def calls_to(self, method: str | None = None, path: str | None = None) -> list[Call]:
        """The calls received with that method and a path matching the regex ``path`` (whole path)."""
        with self.lock:
            return [
                call
                for call in self.calls
                if (method is None or call.method == method.upper())
                and (path is None or re.fullmatch(path, call.path))
            ]

    # ---- the vendor's habits (override) -----------------------------------------------------------
    def auth(self, call: Call) -> Answer | None:
        """``None`` when the call may proceed, else the vendor's 401/403."""
        return None

    def limited(self, call: Call) -> Answer | None:
        """``None`` when within the vendor's limits, else its 429 (count the call here)."""
        return None

    def rate_headers(self, call: Call) -> dict[str, str]:
        """Headers added to every answer (an answer's own headers win)."""
        return {}

    def not_found(self, call: Call) -> Answer:
        return Answer(404, {"error": "not found", "path": call.path})

    def too_many(self, call: Call, retry_after: int) -> Answer:
        """The vendor's 429 for an injected burst."""
        return Answer(429, {"error": "rate limited"}, {"Retry-After": str(retry_after)})

    def server_error(self, call: Call, status: int) -> Answer:
        """The vendor's injected 5xx."""
        return Answer(status, {"error": "internal error"})

    # ---- dispatch ---------------------------------------------------------------------------------
    def _dispatch(self, call: Call) -> Answer | None:
        """The answer, or ``None`` to drop the connection (after the hang of a timeout)."""
        fault, value = self.faults._draw(self.error_statuses)
        if fault == "timeout":
            call.fault = "timeout"
            self._stopping.wait(self.faults.hang_s)
            return None
        with self.lock:
            if fault == "429":
                call.fault = "429"
                answer = self.too_many(call, value)
            elif fault == "5xx":
                call.fault = "5xx"
                answer = self.server_error(call, value)
            else:
                answer = self.auth(call) or self.limited(call) or self._route(call)
            headers = {**self.rate_headers(call), **answer.headers}
            answer = Answer(answer.status, answer.body, headers, answer.content_type)
            call.status = answer.status
        if not fault and self.faults._losing(call.method, call.path):
            call.fault, call.status = "lost", 0
            return None  # applied, answer lost
        return answer

    def _route(self, call: Call) -> Answer:
        for method, pattern, name in self._routes:
            if method == call.method and (match := pattern.fullmatch(call.path)):
                result: Answer = getattr(self, name)(call, **match.groupdict())
                return result
        return self.not_found(call)


def _handler_class(peer: SaasPeer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive
        disable_nagle_algorithm = True  # headers and body leave at once, no 40 ms delayed-ACK stalls

        def _read_body(self) -> bytes:
            if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
                chunks: list[bytes] = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            length = int(self.headers.get("content-length") or 0)
            return self.rfile.read(length) if length else b""

        def _handle(self) -> None:
            if peer.faults.is_down:
                peer.faults._count("down")
                self.close_connection = True
                _reset(self.connection)
                return
            body = self._read_body()
            split = urlsplit(self.path)
            call = Call(
                method=self.command,
                path=split.path,
                query=parse_qs(split.query, keep_blank_values=True),
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body,
            )
            with peer._counting:  # not peer.lock: a test holding it sees the requests queued behind it
                peer.calls.append(call)
                peer.in_flight += 1
            try:
                answer = peer._dispatch(call)
            finally:
                with peer._counting:
                    peer.in_flight -= 1
            if answer is None:
                self.close_connection = True
                _reset(self.connection)
                return
            if isinstance(answer.body, bytes):
                payload = answer.body
            elif answer.body is None:
                payload = b""
            else:
                payload = json.dumps(answer.body).encode()
            self.send_response(answer.status)
            names = {name.lower() for name in answer.headers}
            if payload and "content-type" not in names:
                self.send_header("Content-Type", answer.content_type)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            if answer.status not in (204, 304) and answer.status >= 200:
                self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if answer.status not in (204, 304) and self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _handle  # noqa: N815

        def date_time_string(self, timestamp: float | None = None) -> str:
            """The ``Date`` header on the peer's clock (``now``), as the vendor's server would send it."""
            return email.utils.format_datetime(peer.now().astimezone(UTC), usegmt=True)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            return

    return Handler
