"""The JSON-over-HTTP client the ``httpx`` vendors share (ActiveCampaign, Mailchimp, Kit).

Every request's host is judged by its text first (:attr:`Network.check`, as for HubSpot), goes out on
one kept-alive ``httpx`` client (no proxies from the environment, the peer's CA when one is given,
at most ``max_connections`` at once) on the guard's transport
(:class:`~leadflow.kernel.netguard.GuardedTransport` under :attr:`Network.policy`: each connection is
resolved, judged and made to the checked address at connect time, so a name rebound between the check
and the connection is refused), and its failure becomes a :class:`VendorError`: ``429`` waits
``Retry-After`` (else the vendor's default wait), 5xx, 408 and transport errors are worth retrying,
anything else is refused for good with the vendor's own message (``message_of``). The credentials
travel only in headers set here; an error's text is built from the status and the vendor's message,
never from the request.
"""

from __future__ import annotations

import email.utils
import ssl
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from leadflow.connectors.vendor import FAILED, OK, RETRY, Network, Record, VendorError, Written
from leadflow.kernel.netguard import Blocked, GuardedTransport
from leadflow.kernel.retry import parse_retry_after

EXCERPT = 300


def body_of(response: httpx.Response) -> Any:
    try:
        return response.json() if response.content else {}
    except ValueError:
        return {}


class Rest:
    """One vendor account's HTTP client."""

    def __init__(
        self,
        vendor: str,
        base: str,
        network: Network,
        *,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        max_connections: int = 4,
        default_wait: timedelta = timedelta(seconds=1),
        message_of: Callable[[Any], str] = lambda body: "",
        on_answer: Callable[[httpx.Headers], None] | None = None,
    ) -> None:
        self.vendor = vendor
        self.base = base.rstrip("/")
        self.network = network
        self.default_wait = default_wait
        self.message_of = message_of
        self.on_answer = on_answer
        self.last_headers = httpx.Headers()
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        trust = ssl.create_default_context(cafile=network.ca_file) if network.ca_file else None
        self.client = httpx.Client(
            base_url=self.base,
            headers={"Accept": "application/json", **(headers or {})},
            auth=auth,
            timeout=network.timeout,
            trust_env=False,
            follow_redirects=False,
            transport=GuardedTransport(network.policy, limits=limits, ssl_context=trust),
        )

    def call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        missing_ok: bool = False,
    ) -> Any:
        """The answer's JSON (``None`` for a 404 when ``missing_ok``); failures as :class:`VendorError`."""
        self.network.check(self.base)
        try:
            response = self.client.request(method, path, json=json, params=params)
        except Blocked:
            raise  # the guard's refusal at connect time: a dead letter with its reason, not a retry
        except httpx.TimeoutException:
            raise VendorError(f"{self.vendor} timed out", retry=True) from None
        except httpx.HTTPError as exc:
            raise VendorError(f"{self.vendor} unreachable: {type(exc).__name__}", retry=True) from None
        self.last_headers = response.headers
        if self.on_answer is not None:
            self.on_answer(response.headers)
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            raise self.refusal(response)
        return body_of(response)

    def refusal(self, response: httpx.Response) -> VendorError:
        status = response.status_code
        message = str(self.message_of(body_of(response)) or "")[:EXCERPT]
        text = f"{self.vendor} {status}: {message}" if message else f"{self.vendor} {status}"
        if status == 429:
            asked = parse_retry_after(response.headers.get("retry-after"), datetime.now(UTC))
            return VendorError(
                f"{self.vendor} 429 rate limit",
                retry=True,
                status=429,
                retry_after=asked or self.default_wait,
                rate_limited=True,
            )
        return VendorError(text, retry=status >= 500 or status == 408, status=status)

    def close(self) -> None:
        self.client.close()


def each(records: Sequence[Record], write_one: Callable[[Record], Written]) -> list[Written]:
    """Write records one call (or a few) at a time. A record the vendor refuses for good is ``FAILED``
    with its message and the others go on; a failure worth retrying raises when nothing was written
    yet (the whole batch waits), else the rest are ``RETRY`` and what was written is kept (so nothing
    that is not idempotent, a deal or a note, is written twice). The record that met the failure is
    retried after the vendor's ``Retry-After``, its attempt counted unless it was the rate limit; the
    records after it were never sent, so theirs is not counted: at a 5 % error rate a batch of 25
    Pipedrive persons (two calls each) nearly always stops somewhere, and a record that kept landing
    behind the stop would reach the dead letters without one failure of its own. A refused credential
    raises."""
    written: list[Written] = []
    for index, record in enumerate(records):
        try:
            written.append(write_one(record))
        except VendorError as exc:
            if not exc.retry and exc.status not in (401, 403):
                written.append(Written(record.local_id, FAILED, error=str(exc)))
                continue
            if exc.retry and any(w.outcome == OK for w in written):
                written.append(
                    Written(
                        record.local_id,
                        RETRY,
                        error=str(exc),
                        retry_after=exc.retry_after,
                        rate_limited=exc.rate_limited,
                    )
                )
                written += [
                    Written(
                        r.local_id,
                        RETRY,
                        error=f"not sent: {exc}",
                        retry_after=exc.retry_after,
                        rate_limited=True,  # its attempt uncounted
                    )
                    for r in records[index + 1 :]
                ]
                break
            raise
    return written


def text_of(value: Any) -> str:
    """A value as a vendor's text field holds it: a list joined with ", ", a mapping as "key: value"
    lines in key order (a JSON column may not keep the order given), ``True``/``False`` as "1"/"0"."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, list | tuple):
        return ", ".join(text_of(item) for item in value)
    if isinstance(value, Mapping):
        return "\n".join(f"{key}: {text_of(item)}" for key, item in sorted(value.items()))
    return "" if value is None else str(value)


def names_of(value: Any) -> list[str]:
    """Tag names from a list or a comma-separated string."""
    items = value if isinstance(value, list | tuple) else str(value or "").split(",")
    return [name for name in (str(item).strip() for item in items) if name]


def server_time(headers: httpx.Headers) -> datetime | None:
    """The vendor's own clock from an answer's ``Date`` header."""
    value = headers.get("date")
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).astimezone(UTC)
    except (TypeError, ValueError):
        return None
