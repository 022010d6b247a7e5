"""The webhook deliverer's sender (:mod:`leadflow.kernel.netguard_post`) against raw sockets on 127.0.0.1:
the same answers as httpx (the reference) in every framing a peer may use, connections kept and
replaced, the body limit, timeouts, TLS, and the network guard as strict as the other clients'."""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from unittest.mock import patch

import httpx
import pytest

from leadflow.kernel import netguard
from leadflow.kernel.netguard_post import (
    BODY_LIMIT,
    HEAD_LIMIT,
    Answer,
    ConnectError,
    GuardedPoster,
    InvalidRequest,
    Post,
    PostTimeout,
    ProtocolError,
)
from leadflow.kernel.netpolicy import Blocked, Policy
from leadflow.kernel.settings import Settings
from tests.peers.saas import tls_files
from tests.unit.kernel.test_netguard import BLOCKED

LOOPBACK = Policy.parse("127.0.0.1")


class RawPeer:
    """A TCP server answering each request with ``answer`` (raw bytes), keeping the connection unless
    ``close`` (after the answer); it records the requests' heads and bodies and counts connections."""

    def __init__(
        self, answer: bytes, *, close: bool = False, silent: bool = False, tls: ssl.SSLContext | None = None
    ) -> None:
        self.answer, self.close, self.silent, self.tls = answer, close, silent, tls
        self.requests: list[tuple[bytes, bytes]] = []
        self.connections = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            self._open.append(sock)  # closed by stop() if its thread has not closed it by then
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, plain: socket.socket) -> None:
        with contextlib.ExitStack() as closing, contextlib.suppress(OSError, ssl.SSLError):
            sock = closing.enter_context(plain)  # every way out closes it (TLS: the wrapped one)
            if self.tls is not None:
                sock = closing.enter_context(self.tls.wrap_socket(plain, server_side=True))
                self._open.append(sock)
            buffer = b""
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = sock.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, buffer = buffer.split(b"\r\n\r\n", 1)
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                while len(buffer) < length:
                    buffer += sock.recv(65536)
                self.requests.append((head, buffer[:length]))
                buffer = buffer[length:]
                if self.silent:
                    continue
                sock.sendall(self.answer)
                if self.close:
                    sock.close()
                    return

    def stop(self) -> None:
        self._listener.close()
        for sock in self._open:
            with contextlib.suppress(OSError):
                sock.close()


@pytest.fixture
def raw_peer() -> Iterator[Callable[..., RawPeer]]:
    made: list[RawPeer] = []

    def make(answer: bytes, **options: object) -> RawPeer:
        made.append(RawPeer(answer, **options))  # type: ignore[arg-type]
        return made[-1]

    yield make
    for peer in made:
        peer.stop()


@pytest.fixture
def poster() -> Iterator[GuardedPoster]:
    sender = GuardedPoster(LOOPBACK, concurrency=4)
    yield sender
    sender.close()


def _one(
    poster: GuardedPoster, url: str, *, timeout: float = 5.0, headers: list[tuple[str, str]] | None = None
) -> Answer | Exception:
    [sent] = poster.send([Post(url, headers or [("content-type", "application/json")], b'{"a":1}')], timeout)
    return sent.result


FRAMINGS = {
    "length": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-One: a\r\n\r\nhello",
    "chunked": b"HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    "interim": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok",
    "repeated": b"HTTP/1.1 200 OK\r\nVary: a\r\nVary: b\r\nContent-Length: 0\r\n\r\n",
    "empty": b"HTTP/1.1 204 No Content\r\n\r\n",
    "error": b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 120\r\nContent-Length: 4\r\n\r\nbusy",
    "redirect": b"HTTP/1.1 301 Moved\r\nLocation: http://example.com/x\r\nContent-Length: 0\r\n\r\n",
    "until close": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nread until the end",
}


@pytest.mark.parametrize("framing", list(FRAMINGS))
def test_every_framing_answers_as_httpx_reads_it(
    framing: str, raw_peer: Callable[..., RawPeer], poster: GuardedPoster
) -> None:
    answer = FRAMINGS[framing]
    mine = raw_peer(answer, close=framing == "until close")
    reference = raw_peer(answer, close=framing == "until close")
    got = _one(poster, f"http://127.0.0.1:{mine.port}/hook?x=1")
    with netguard.client(Settings(network_allow="127.0.0.1"), timeout=5) as client:
        expected = client.post(f"http://127.0.0.1:{reference.port}/hook?x=1", content=b'{"a":1}')
    assert isinstance(got, Answer)
    assert (got.status, got.body) == (expected.status_code, expected.content)
    for name, value in expected.headers.items():
        if name != "vary":
            assert got.headers[name] == value
    assert got.headers.get("vary") == (", ".join(expected.headers.get_list("vary")) or None)


def test_the_request_is_what_the_caller_asked_for(
    raw_peer: Callable[..., RawPeer], poster: GuardedPoster
) -> None:
    peer = raw_peer(FRAMINGS["length"])
    headers = [("content-type", "application/json"), ("webhook-id", "msg_1")]
    _one(poster, f"http://localhost:{peer.port}/in/hook?a=b%20c", headers=headers)
    [(head, body)] = peer.requests
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /in/hook?a=b%20c HTTP/1.1"
    assert set(lines[1:]) == {
        f"host: localhost:{peer.port}".encode(),
        b"content-type: application/json",
        b"webhook-id: msg_1",
        b"content-length: 7",
    }
    assert body == b'{"a":1}'


def test_a_connection_is_kept_and_one_closed_by_the_peer_is_replaced(
    raw_peer: Callable[..., RawPeer], poster: GuardedPoster
) -> None:
    kept = raw_peer(FRAMINGS["length"])
    for _ in range(3):
        assert isinstance(_one(poster, f"http://127.0.0.1:{kept.port}/"), Answer)
    assert kept.connections == 1
    # answers as if it kept the connection, then closes it: the next post finds it closed and goes again
    closing = raw_peer(FRAMINGS["length"], close=True)
    for _ in range(3):
        assert isinstance(_one(poster, f"http://127.0.0.1:{closing.port}/"), Answer)
    assert (closing.connections, len(closing.requests)) == (3, 3)


def test_a_batch_goes_out_concurrently_and_in_order(
    raw_peer: Callable[..., RawPeer], poster: GuardedPoster
) -> None:
    peer = raw_peer(FRAMINGS["length"])
    posts = [Post(f"http://127.0.0.1:{peer.port}/{n}", [], b"x") for n in range(20)]
    sent = poster.send(posts, 5.0)
    assert [type(one.result) for one in sent] == [Answer] * 20
    assert 1 < peer.connections <= 4  # the concurrency
    assert sorted(head.split(b" ")[1] for head, _ in peer.requests) == sorted(
        f"/{n}".encode() for n in range(20)
    )


def test_at_most_the_body_limit_is_read(raw_peer: Callable[..., RawPeer], poster: GuardedPoster) -> None:
    big = b"y" * (3 * BODY_LIMIT)
    peer = raw_peer(b"HTTP/1.1 400 Bad\r\nContent-Length: %d\r\n\r\n" % len(big) + big)
    got = _one(poster, f"http://127.0.0.1:{peer.port}/")
    assert isinstance(got, Answer)
    assert (got.status, got.body) == (400, big[:BODY_LIMIT])
    assert isinstance(_one(poster, f"http://127.0.0.1:{peer.port}/"), Answer)  # on a new connection
    assert peer.connections == 2


def test_an_endless_head_is_a_protocol_error(raw_peer: Callable[..., RawPeer], poster: GuardedPoster) -> None:
    """Interim answers without end, or one header line without end: refused past HEAD_LIMIT bytes."""
    interim = raw_peer(b"HTTP/1.1 100 Continue\r\n\r\n" * 5000)
    huge = raw_peer(b"HTTP/1.1 200 OK\r\nX-Big: " + b"z" * (2 * HEAD_LIMIT) + b"\r\n\r\n")
    for peer in (interim, huge):
        got = _one(poster, f"http://127.0.0.1:{peer.port}/")
        assert isinstance(got, ProtocolError)
        assert "head passed" in str(got)


def test_idle_connections_are_kept_up_to_a_bound(raw_peer: Callable[..., RawPeer]) -> None:
    peers = [raw_peer(FRAMINGS["length"]) for _ in range(3)]
    poster = GuardedPoster(LOOPBACK, concurrency=4)
    try:
        with patch("leadflow.kernel.netguard_post.MAX_KEPT", 2):
            for peer in peers + peers:
                assert isinstance(_one(poster, f"http://127.0.0.1:{peer.port}/"), Answer)
    finally:
        poster.close()
    # two kept between the rounds, the third closed at once and opened again
    assert sorted(peer.connections for peer in peers) == [1, 1, 2]


def test_no_answer_within_the_timeout(raw_peer: Callable[..., RawPeer], poster: GuardedPoster) -> None:
    peer = raw_peer(b"", silent=True)
    got = _one(poster, f"http://127.0.0.1:{peer.port}/", timeout=0.3)
    assert isinstance(got, PostTimeout)
    assert str(got) == "no answer within 0.3 s"


def test_a_broken_answer_and_a_closed_port(raw_peer: Callable[..., RawPeer], poster: GuardedPoster) -> None:
    peer = raw_peer(b"NOT HTTP AT ALL\r\n\r\n")
    assert "ProtocolError" in str(_one(poster, f"http://127.0.0.1:{peer.port}/"))
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    got = _one(poster, f"http://127.0.0.1:{port}/")
    assert isinstance(got, ConnectError)
    assert str(got).startswith("ConnectError: ")


def test_tls_is_verified(raw_peer: Callable[..., RawPeer]) -> None:
    files = tls_files()
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(files.cert_file, files.key_file)
    peer = raw_peer(FRAMINGS["length"], tls=server)
    trusting = GuardedPoster(LOOPBACK, ssl_context=ssl.create_default_context(cafile=files.ca_file))
    untrusting = GuardedPoster(LOOPBACK)  # the default trust: not this test CA
    try:
        got = _one(trusting, f"https://localhost:{peer.port}/secure")
        assert isinstance(got, Answer)
        assert got.body == b"hello"
        refused = _one(untrusting, f"https://localhost:{peer.port}/secure")
        assert isinstance(refused, ConnectError)
        assert "TLS" in str(refused)
    finally:
        trusting.close()
        untrusting.close()
    assert len(peer.requests) == 1


@pytest.mark.parametrize(("url", "reason"), BLOCKED)
def test_every_literal_form_of_an_internal_address_is_refused(url: str, reason: str) -> None:
    poster = GuardedPoster(Policy.parse(""))
    try:
        got = _one(poster, url)
    finally:
        poster.close()
    try:
        httpx.URL(url)
    except httpx.InvalidURL:  # a form the URL reader refuses (octal): refused as such, never sent
        assert isinstance(got, InvalidRequest)
        return
    assert isinstance(got, Blocked)
    assert reason in str(got)


def test_a_name_resolving_to_loopback_is_refused_at_connect_time(raw_peer: Callable[..., RawPeer]) -> None:
    peer = raw_peer(FRAMINGS["length"])
    strict, admitting = GuardedPoster(Policy.parse("")), GuardedPoster(Policy.parse("localhost"))
    try:
        got = _one(strict, f"http://localhost:{peer.port}/")
        assert isinstance(got, Blocked)
        assert "localhost (127.0.0.1) is loopback" in str(got)
        assert peer.connections == 0
        assert isinstance(_one(admitting, f"http://localhost:{peer.port}/"), Answer)  # the allow-list
    finally:
        strict.close()
        admitting.close()


@pytest.mark.parametrize(
    ("url", "headers"),
    [
        ("ftp://example.com/x", []),
        ("http:///nohost", []),
        ("https://example.com/", [("x-evil", "a\r\nhost: other")]),
        ("https://example.com/", [("bad name", "x")]),
        ("https://example.com/", [("Host", "other.example")]),
    ],
)
def test_what_cannot_be_sent_is_refused_before_connecting(
    url: str, headers: list[tuple[str, str]], poster: GuardedPoster
) -> None:
    assert isinstance(_one(poster, url, headers=headers), InvalidRequest)


def test_httpx_rejects_the_same_header_injection(raw_peer: Callable[..., RawPeer]) -> None:
    """The reference refuses what this sender refuses (a value with CR/LF), and sends nothing."""
    peer = raw_peer(FRAMINGS["length"])
    client = netguard.client(Settings(network_allow="127.0.0.1"), timeout=5)
    with client, pytest.raises(httpx.LocalProtocolError):
        client.post(f"http://127.0.0.1:{peer.port}/", headers={"x-evil": "a\r\nhost: other"})
    assert peer.requests == []
