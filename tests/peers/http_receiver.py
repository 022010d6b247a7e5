"""A real HTTP server on 127.0.0.1 that records every request and answers as the test programs it.

``HttpReceiver().reply(500, Reply(429, headers={"Retry-After": "120"}))`` answers the next two requests
that way, then 200 (or the ``default`` reply given). An optional ``check`` runs on each request as it
arrives (e.g. a signature check); if it raises, the request is answered ``400`` with the error and the
error is recorded.
"""

from __future__ import annotations

import socket
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from leadflow.kernel import jsonutil


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: bytes
    check_error: str | None = None

    def json(self) -> Any:
        return jsonutil.loads(self.body)


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # a deliverer opens SENDERS connections at once (socketserver's 5 drops SYNs)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class HttpReceiver:
    """Start with ``with HttpReceiver() as receiver:``; ``receiver.url`` is its base address."""

    def __init__(
        self, check: Callable[[Received], None] | None = None, default: Reply | None = None, *, port: int = 0
    ) -> None:
        self.check = check
        self.default = default or Reply()  # the answer once the queued ones are used up
        self.requests: list[Received] = []
        self._replies: deque[Reply] = deque()
        self._arrived = threading.Condition()
        self._server = _Server(("127.0.0.1", port), self._handler_class())  # 0: any free port
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-receiver", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def reply(self, *replies: Reply | int) -> None:
        """Queue the answers to the next requests (a bare int is a status with an empty body)."""
        with self._arrived:
            self._replies.extend(Reply(r) if isinstance(r, int) else r for r in replies)

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Whether ``count`` requests arrived within ``timeout`` seconds."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.requests) >= count, timeout)

    def __enter__(self) -> HttpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _answer(self, received: Received) -> Reply:
        error = None
        if self.check is not None:
            try:
                self.check(received)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
        with self._arrived:
            self.requests.append(replace(received, check_error=error))
            reply = self._replies.popleft() if self._replies else self.default
            self._arrived.notify_all()
        return Reply(400, error.encode()) if error else reply

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {name.lower(): value for name, value in self.headers.items()}
                reply = receiver._answer(Received(self.command, self.path, headers, body))
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_POST = do_GET = do_PUT = _handle  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

        return Handler


def closed_port_url() -> str:
    """An address on 127.0.0.1 nothing listens on (the port was just released): connections fail."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"
