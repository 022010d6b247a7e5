"""Request body limits for the REST API (the tracking API applies Segment's own limits).

Every ``/api/`` body (and every incoming webhook's, ``/hooks/``) is limited to
``LEADFLOW_API_MAX_BODY_BYTES``, except on the few paths given their
own :class:`Limit` (a CSV upload to ``/api/v1/imports`` is limited by ``LEADFLOW_IMPORT_MAX_BYTES``):
one mechanism, one answer, ``413 payload_too_large`` naming the setting to raise.

The refusal keeps a keep-alive connection usable. A body declared by ``Content-Length`` is refused
before any of it is read; the server (uvicorn, h11 or httptools) then skips what the client still sends
of it before reading the next request. A body streamed without a length is refused once the bytes
received pass the limit; the app is told the client left, so it stops (a route reading the body itself
then raises :class:`~starlette.requests.ClientDisconnect`, which is not passed on: the server would
close the connection), and the server again skips the rest of the body.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadflow.kernel import jsonutil
from leadflow.kernel.errors import PayloadTooLarge


@dataclass(frozen=True)
class Limit:
    """The largest body in bytes, and the setting that raises it (named in the refusal)."""

    size: int
    setting: str


def too_large(limit: Limit) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is larger than {limit.size:,} bytes ({limit.setting})", code="payload_too_large"
    )


class BodyLimit:
    """Refuse REST bodies over their path's limit with 413, by declared length or while reading."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        limit: Limit,
        paths: dict[str, Limit] | None = None,
        prefix: str | tuple[str, ...] = "/api/",
    ) -> None:
        self.app = app
        self.limit = limit
        self.paths = paths or {}
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        limit = self.paths.get(scope["path"], self.limit)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit.size:
            await _refuse(send, limit)
            return
        received, refused = 0, False

        async def guarded_send(message: Message) -> None:
            if not refused:
                await send(message)

        async def limited() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request" and not refused:
                received += len(message.get("body", b""))
                if received > limit.size:
                    refused = True
                    await _refuse(send, limit)
                    return {"type": "http.disconnect"}
            return message

        try:
            await self.app(scope, limited, guarded_send)
        except ClientDisconnect:
            if not refused:
                raise
            # The route read on after the refusal and was told the client left. The 413 is out:
            # raising on would make the server close the connection.


async def _refuse(send: Send, limit: Limit) -> None:
    error = too_large(limit)
    body = jsonutil.dumpb({"error": {"code": error.code, "message": error.message}})
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
