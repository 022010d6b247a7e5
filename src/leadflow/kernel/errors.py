"""Domain errors. Each carries a machine-readable ``code``; the HTTP layer maps its kind to a status."""

from __future__ import annotations

from typing import Any


class LeadflowError(Exception):
    """Base of every error a caller should see with a clear code and message."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.details = details


class BadRequest(LeadflowError):
    code = "bad_request"


class Unauthorized(LeadflowError):
    code = "unauthorized"


class Forbidden(LeadflowError):
    code = "forbidden"


class NotFound(LeadflowError):
    code = "not_found"


class Conflict(LeadflowError):
    code = "conflict"


class PayloadTooLarge(LeadflowError):
    code = "payload_too_large"


class Invalid(LeadflowError):
    """Well-formed input that breaks a rule (HTTP 422)."""

    code = "invalid"


class Misconfigured(LeadflowError):
    """A setting this request needs is wrong (HTTP 500; the sender retries once it is fixed)."""

    code = "misconfigured"


class Upstream(LeadflowError):
    """A service we had to call failed or refused (HTTP 502)."""

    code = "bad_gateway"


class RateLimited(LeadflowError):
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = retry_after
