"""Request body limit for the REST API (the tracking API applies Segment's own limits)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from leadflow.kernel import jsonutil
from leadflow.kernel.errors import PayloadTooLarge


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than {limit:,} bytes", code="payload_too_large")


class BodyLimit:
    """Refuse REST bodies over ``limit`` bytes with 413, by declared length or while reading."""

    def __init__(self, app: ASGIApp, *, limit: int, prefix: str = "/api/") -> None:
        self.app = app
        self.limit = limit
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await self._refuse(send)
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
                if received > self.limit:
                    refused = True
                    await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, limited, guarded_send)

    async def _refuse(self, send: Send) -> None:
        error = _too_large(self.limit)
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
