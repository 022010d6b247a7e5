"""Reading a request body: refused past a size limit without reading (or inflating) more than that,
gzip undone. The tracking API's and the email feedback routes' raw bodies."""

from __future__ import annotations

import zlib

from starlette.requests import Request

from leadflow.events.schemas import MAX_MESSAGE_BYTES
from leadflow.kernel.errors import BadRequest


def _too_large(limit: int) -> BadRequest:
    code = "message_too_large" if limit == MAX_MESSAGE_BYTES else "request_too_large"
    return BadRequest(f"the request body is larger than {limit // 1024} KB", code=code)


async def read_body(request: Request, limit: int) -> bytes:
    """The body, un-gzipped, refused past ``limit`` bytes without reading (or inflating) more than that."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise BadRequest(f"unsupported Content-Encoding {encoding!r}; use gzip", code="unsupported_encoding")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise BadRequest("the body is not valid gzip", code="invalid_gzip") from None
    if len(data) > limit or inflater.unconsumed_tail:
        raise _too_large(limit)
    if not inflater.eof:
        raise BadRequest("the gzip body is truncated", code="invalid_gzip")
    return data
