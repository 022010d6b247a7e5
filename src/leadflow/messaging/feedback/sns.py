"""Amazon SNS subscription confirmations, for SES bounce and complaint notifications.

SNS delivers nothing to an HTTPS endpoint until the endpoint confirms the subscription by fetching the
``SubscribeURL`` of the ``SubscriptionConfirmation`` message SNS sends first. The request reaching us is
already authenticated (the API key travels as Basic credentials in the address SNS calls); the URL is
fetched only when it matches ``LEADFLOW_SNS_SUBSCRIBE_URL_PATTERN`` (by default an ``https`` address of
an ``sns.<region>.amazonaws.com`` host), so a caller cannot make leadflow request an address of its
choosing; the fetch goes through the network guard (:mod:`leadflow.kernel.netguard`) like every request
made on a user's behalf.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx

from leadflow.kernel import netguard
from leadflow.kernel.errors import BadRequest, Upstream
from leadflow.kernel.settings import Settings

log = logging.getLogger(__name__)

TIMEOUT = 10.0


def confirmation(payload: Any) -> str | None:
    """The ``SubscribeURL`` when ``payload`` is an SNS subscription confirmation, else ``None``."""
    if not isinstance(payload, dict) or payload.get("Type") != "SubscriptionConfirmation":
        return None
    url = payload.get("SubscribeURL")
    if not isinstance(url, str) or not url:
        raise BadRequest("an SNS SubscriptionConfirmation without a SubscribeURL", code="invalid_feedback")
    return url


def confirm(url: str, settings: Settings) -> None:
    """Fetch ``url`` (a ``SubscribeURL``) if it matches ``LEADFLOW_SNS_SUBSCRIBE_URL_PATTERN`` and the
    network guard lets it through; SNS answers 200 when confirmed."""
    if not re.match(settings.sns_subscribe_url_pattern, url):
        raise BadRequest(
            "the SubscribeURL is not an Amazon SNS address (LEADFLOW_SNS_SUBSCRIBE_URL_PATTERN)",
            code="untrusted_subscribe_url",
        )
    try:
        with netguard.client(settings, timeout=TIMEOUT) as client:
            answer = client.get(url)
    except netguard.Blocked as exc:
        raise BadRequest(f"the SubscribeURL is refused: {exc}", code="untrusted_subscribe_url") from None
    except httpx.HTTPError as exc:
        raise Upstream(f"SNS could not be reached: {exc}", code="sns_confirmation_failed") from None
    if answer.status_code != 200:
        raise Upstream(
            f"SNS refused the confirmation: HTTP {answer.status_code} {answer.text[:200]}",
            code="sns_confirmation_failed",
        )
    log.info("SNS subscription confirmed: %s", url.split("?", 1)[0])
