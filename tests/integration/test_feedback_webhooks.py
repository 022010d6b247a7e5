"""Provider webhooks as providers can send them: the key in the address they call (Basic credentials),
and Amazon SNS's subscription handshake answered against a real HTTP peer, on both databases."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient
from pydantic import SecretStr

from leadflow.api.app import create_app
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.errors import Conflict
from leadflow.kernel.settings import Settings
from leadflow.messaging.feedback import api
from leadflow.messaging.models import suppressions
from leadflow.runtime.context import build_context
from leadflow.webhooks import replay
from leadflow.webhooks.models import webhook_replay_tokens as replay_tokens
from tests.peers.http_receiver import HttpReceiver, Reply
from tests.peers.sns import LOCAL_CERTS, SnsPeer

SENDGRID = "/api/v1/email/feedback/sendgrid"
SES = "/api/v1/email/feedback/ses"
MAILGUN = "/api/v1/email/feedback/mailgun"
MAILGUN_KEY = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
BOUNCE = [
    {"event": "bounce", "email": "gone@example.com", "type": "bounce", "reason": "550 5.1.1 no such user"}
]
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"
LOCAL_SNS = r"^http://127\.0\.0\.1:\d+/"
CERT_ON_LOCALHOST = r"^http://localhost:\d+/[^/?#]+\.pem$"
KIND = "SubscriptionConfirmation"


def _client(ctx: AppContext) -> TestClient:
    app = create_app(ctx, run_worker=False)
    app.include_router(api.router)
    return TestClient(app)


@pytest.fixture
def web(ctx: AppContext) -> Iterator[TestClient]:
    with _client(ctx) as client:
        yield client


@pytest.fixture
def configured(settings: Settings, clock: VirtualClock) -> Iterator[Callable[..., TestClient]]:
    """The API with some settings changed: ``configured(mailgun_signing_key=...)``."""
    opened: list[tuple[AppContext, TestClient]] = []

    def make(**changes: Any) -> TestClient:
        context = build_context(settings.model_copy(update=changes), clock=clock)
        client = _client(context).__enter__()
        opened.append((context, client))
        return client

    yield make
    for context, client in opened:
        client.__exit__(None, None, None)
        context.close()


@pytest.fixture
def local_sns(configured: Callable[..., TestClient]) -> TestClient:
    """The API with SubscribeURLs and signing certificates on 127.0.0.1 allowed (the test's SNS peers), by
    the patterns and by the network guard."""
    return configured(**LOCAL_CERTS, sns_subscribe_url_pattern=LOCAL_SNS)


def _suppressed(ctx: AppContext) -> list[str]:
    with ctx.db.read() as conn:
        return list(conn.execute(sa.select(suppressions.c.email)).scalars())


def _confirmation(sns: SnsPeer, url: str) -> str:
    """A subscription confirmation, signed by the SNS peer ``sns``, whose SubscribeURL is on ``url``."""
    return json.dumps(
        sns.confirmation(f"{url}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=2336412f37f")
    )


def test_the_key_may_travel_as_basic_credentials(ctx: AppContext, web: TestClient, admin_key: str) -> None:
    """``https://leadflow:<key>@host/...`` (SendGrid, Postmark, Mailgun, SNS), or the key as user name."""
    assert web.post(SENDGRID, json=BOUNCE, auth=("leadflow", admin_key)).json() == {"applied": 1}
    assert _suppressed(ctx) == ["gone@example.com"]
    assert web.post(SENDGRID, json=BOUNCE, auth=(admin_key, "")).status_code == 200


def test_wrong_or_missing_basic_credentials_change_nothing(
    ctx: AppContext, web: TestClient, write_key: str
) -> None:
    wrong = web.post(SENDGRID, json=BOUNCE, auth=("leadflow", "lf_not-a-key"))
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "invalid_api_key")
    missing = web.post(SENDGRID, json=BOUNCE)
    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "missing_api_key")
    assert "Basic auth password" in missing.json()["error"]["message"]
    ingest_only = web.post(SENDGRID, json=BOUNCE, auth=("leadflow", write_key))
    assert (ingest_only.status_code, ingest_only.json()["error"]["code"]) == (403, "insufficient_scope")
    assert _suppressed(ctx) == []


def test_an_sns_subscription_confirmation_is_confirmed(
    local_sns: TestClient, admin_key: str, sns_peer: SnsPeer
) -> None:
    with HttpReceiver() as sns:
        sns.reply(Reply(200, b"<ConfirmSubscriptionResponse/>", {"Content-Type": "text/xml"}))
        answer = local_sns.post(
            SES,
            content=_confirmation(sns_peer, sns.url),
            headers={
                "Content-Type": "text/plain; charset=UTF-8",
                "x-amz-sns-message-type": "SubscriptionConfirmation",
            },
            auth=("leadflow", admin_key),
        )
        assert answer.json() == {"applied": 0}
        assert sns.wait_for(1)
    [request] = sns.requests
    query = parse_qs(urlsplit(request.path).query)
    assert (request.method, query["Action"], query["Token"]) == (
        "GET",
        ["ConfirmSubscription"],
        ["2336412f37f"],
    )


def test_a_refused_confirmation_is_a_502(local_sns: TestClient, admin_key: str, sns_peer: SnsPeer) -> None:
    with HttpReceiver() as sns:
        sns.reply(Reply(403, b"<Error><Code>AuthorizationError</Code></Error>"))
        answer = local_sns.post(SES, content=_confirmation(sns_peer, sns.url), auth=("leadflow", admin_key))
    assert (answer.status_code, answer.json()["error"]["code"]) == (502, "sns_confirmation_failed")
    assert "403" in answer.json()["error"]["message"]


def test_a_subscribe_url_outside_amazon_sns_is_never_fetched(
    configured: Callable[..., TestClient], admin_key: str, sns_peer: SnsPeer
) -> None:
    """The message verifies (its certificate on the local peer); its SubscribeURL is not Amazon's."""
    web = configured(**LOCAL_CERTS)
    with HttpReceiver() as elsewhere:
        answer = web.post(SES, content=_confirmation(sns_peer, elsewhere.url), auth=("leadflow", admin_key))
        assert not elsewhere.wait_for(1, timeout=0.3)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "untrusted_subscribe_url")


def test_a_subscribe_url_on_an_internal_address_is_never_fetched(
    configured: Callable[..., TestClient], admin_key: str, sns_peer: SnsPeer
) -> None:
    """The pattern admits it, the network guard does not (LEADFLOW_NETWORK_ALLOW admits only the
    certificate's host name)."""
    certs = {**LOCAL_CERTS, "sns_cert_url_pattern": CERT_ON_LOCALHOST, "network_allow": "localhost"}
    web = configured(**certs, sns_subscribe_url_pattern=LOCAL_SNS)
    cert_url = sns_peer.cert_url.replace("127.0.0.1", "localhost")
    with HttpReceiver() as inside:
        signed = sns_peer.confirmation(f"{inside.url}/?Action=ConfirmSubscription", cert_url=cert_url)
        answer = web.post(SES, content=json.dumps(signed), auth=("leadflow", admin_key))
        assert not inside.wait_for(1, timeout=0.3)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "untrusted_subscribe_url")
    assert "blocked: 127.0.0.1 is loopback" in answer.json()["error"]["message"]


def test_a_payload_that_is_not_json_is_refused(web: TestClient, admin_key: str) -> None:
    answer = web.post(SES, content=b"Type=SubscriptionConfirmation", auth=("leadflow", admin_key))
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_feedback")


# --- providers' own signatures ---------------------------------------------------------------------


def _sendgrid_keys() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(der).decode()  # as SendGrid's settings page shows it


def _sendgrid_signed(private: ec.EllipticCurvePrivateKey, body: bytes, timestamp: int) -> dict[str, str]:
    signature = private.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": str(timestamp),
    }


def test_a_signed_sendgrid_webhook_is_verified(
    ctx: AppContext, configured: Callable[..., TestClient], admin_key: str, clock: VirtualClock
) -> None:
    private, public_key = _sendgrid_keys()
    web = configured(sendgrid_verification_key=SecretStr(public_key))
    body = json.dumps(BOUNCE).encode()
    now = int(clock.now().timestamp())
    auth = ("leadflow", admin_key)
    for headers in (
        {"Content-Type": "application/json"},  # unsigned
        _sendgrid_signed(private, body + b" ", now),  # another payload
        _sendgrid_signed(_sendgrid_keys()[0], body, now),  # another key
        _sendgrid_signed(private, body, now - 600),  # a replay, ten minutes later
    ):
        refused = web.post(SENDGRID, content=body, headers=headers, auth=auth)
        assert (refused.status_code, refused.json()["error"]["code"]) == (401, "invalid_signature")
    assert _suppressed(ctx) == []
    signed = web.post(SENDGRID, content=body, headers=_sendgrid_signed(private, body, now), auth=auth)
    assert signed.json() == {"applied": 1}
    assert _suppressed(ctx) == ["gone@example.com"]


def test_a_misconfigured_sendgrid_key_is_a_500_the_provider_retries(
    configured: Callable[..., TestClient], admin_key: str
) -> None:
    web = configured(sendgrid_verification_key=SecretStr("not a key"))
    answer = web.post(
        SENDGRID,
        json=BOUNCE,
        headers=_sendgrid_signed(_sendgrid_keys()[0], b"[]", 0),
        auth=("leadflow", admin_key),
    )
    assert (answer.status_code, answer.json()["error"]["code"]) == (500, "misconfigured")


def _mailgun(
    key: str, timestamp: int, token: str = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
) -> Any:
    digest = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256).hexdigest()
    return {
        "signature": {"timestamp": str(timestamp), "token": token, "signature": digest},
        "event-data": {
            "event": "failed",
            "severity": "permanent",
            "reason": "bounce",
            "recipient": "gone@example.com",
            "delivery-status": {"code": 550, "message": "5.1.1 unknown"},
        },
    }


def test_a_mailgun_webhook_signature_is_verified(
    ctx: AppContext, configured: Callable[..., TestClient], admin_key: str, clock: VirtualClock
) -> None:
    web = configured(mailgun_signing_key=SecretStr(MAILGUN_KEY))
    now = int(clock.now().timestamp())
    auth = ("leadflow", admin_key)
    for payload in (
        _mailgun("another-signing-key", now),
        _mailgun(MAILGUN_KEY, now - 600),
        {"event-data": _mailgun("x", now)["event-data"]},
    ):
        refused = web.post(MAILGUN, json=payload, auth=auth)
        assert (refused.status_code, refused.json()["error"]["code"]) == (401, "invalid_signature")
    assert _suppressed(ctx) == []
    signed = web.post(MAILGUN, json=_mailgun(MAILGUN_KEY, now), auth=auth)
    assert signed.json() == {"applied": 1}
    assert _suppressed(ctx) == ["gone@example.com"]


# --- replayed signatures ---------------------------------------------------------------------------

TOKEN = "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"


def _tokens(ctx: AppContext) -> list[tuple[str, str]]:
    with ctx.db.read() as conn:
        return [tuple(row) for row in conn.execute(sa.select(replay_tokens.c.source, replay_tokens.c.token))]


def _other_content(payload: Any, recipient: str) -> Any:
    """The same signature block with other ``event-data`` (which Mailgun's signature does not cover)."""
    return {**payload, "event-data": {**payload["event-data"], "recipient": recipient}}


def test_a_mailgun_signature_replayed_with_other_content_is_refused(
    ctx: AppContext, configured: Callable[..., TestClient], admin_key: str, clock: VirtualClock
) -> None:
    web = configured(mailgun_signing_key=SecretStr(MAILGUN_KEY))
    auth = ("leadflow", admin_key)
    signed = _mailgun(MAILGUN_KEY, int(clock.now().timestamp()))
    assert web.post(MAILGUN, json=signed, auth=auth).json() == {"applied": 1}
    clock.advance(timedelta(minutes=2))  # still within the signature's five minutes
    replayed = web.post(MAILGUN, json=_other_content(signed, "ceo@example.com"), auth=auth)
    assert (replayed.status_code, replayed.json()["error"]["code"]) == (409, "signature_replayed")
    assert _suppressed(ctx) == ["gone@example.com"]
    assert _tokens(ctx) == [("mailgun", TOKEN)]


def test_the_same_mailgun_webhook_again_is_a_harmless_redelivery(
    ctx: AppContext, configured: Callable[..., TestClient], admin_key: str, clock: VirtualClock
) -> None:
    """Same token, same content (however spaced or ordered): 200, nothing applied a second time."""
    web = configured(mailgun_signing_key=SecretStr(MAILGUN_KEY))
    auth = ("leadflow", admin_key)
    signed = _mailgun(MAILGUN_KEY, int(clock.now().timestamp()))
    assert web.post(MAILGUN, json=signed, auth=auth).json() == {"applied": 1}
    with ctx.db.write() as conn:  # were it applied again, the suppression would come back
        conn.execute(suppressions.delete())
    again = json.dumps(dict(reversed(list(signed.items()))), indent=2)
    answer = web.post(MAILGUN, content=again, headers={"Content-Type": "application/json"}, auth=auth)
    assert (answer.status_code, answer.json()) == (200, {"applied": 0})
    assert _suppressed(ctx) == []


def test_a_mailgun_token_is_remembered_even_when_its_event_applies_nothing(
    ctx: AppContext, configured: Callable[..., TestClient], admin_key: str, clock: VirtualClock
) -> None:
    """A ``delivered`` event changes nothing here, but its signature must not carry a bounce later."""
    web = configured(mailgun_signing_key=SecretStr(MAILGUN_KEY))
    auth = ("leadflow", admin_key)
    delivered = _mailgun(MAILGUN_KEY, int(clock.now().timestamp()))
    delivered["event-data"] = {"event": "delivered", "recipient": "gone@example.com"}
    assert web.post(MAILGUN, json=delivered, auth=auth).json() == {"applied": 0}
    bounce = {**delivered, "event-data": _mailgun(MAILGUN_KEY, 0)["event-data"]}
    replayed = web.post(MAILGUN, json=bounce, auth=auth)
    assert (replayed.status_code, replayed.json()["error"]["code"]) == (409, "signature_replayed")
    assert _suppressed(ctx) == []


def test_a_token_recorded_in_a_rolled_back_transaction_is_not_remembered(
    ctx: AppContext, clock: VirtualClock
) -> None:
    """The token is written in the transaction that applies the feedback: if that fails, the provider's
    retry is applied normally."""
    seal = replay.Seal("mailgun", TOKEN, replay.digest({"n": 1}), clock.now() + timedelta(minutes=5))

    def remember_then_fail() -> None:
        with ctx.db.write() as conn:
            assert replay.remember(conn, seal, clock.now())
            raise RuntimeError("applying the feedback failed")

    with pytest.raises(RuntimeError):
        remember_then_fail()
    assert _tokens(ctx) == []
    with ctx.db.write() as conn:
        assert replay.remember(conn, seal, clock.now()) is True
    with ctx.db.write() as conn:
        assert replay.remember(conn, seal, clock.now()) is False
    assert _tokens(ctx) == [("mailgun", TOKEN)]


def test_expired_tokens_are_pruned_when_new_ones_are_recorded(ctx: AppContext, clock: VirtualClock) -> None:
    now = clock.now()
    with ctx.db.write() as conn:
        for n in range(3):
            seal = replay.Seal("mailgun", f"old-{n}", replay.digest(n), now + timedelta(minutes=n + 1))
            assert replay.remember(conn, seal, now)
    later = now + timedelta(minutes=2, seconds=30)  # old-0 and old-1 have expired, old-2 has not
    with ctx.db.write() as conn:
        assert replay.remember(conn, replay.Seal("mailgun", "new", replay.digest(9), later), later)
    assert sorted(token for _, token in _tokens(ctx)) == ["new", "old-2"]


def test_one_token_used_twice_at_once_is_applied_once(ctx: AppContext, clock: VirtualClock) -> None:
    """The second transaction waits for the first's token (the primary key), then sees it: whichever
    way the two interleave, one is recorded and the other refused."""
    now, expires = clock.now(), clock.now() + timedelta(minutes=5)
    first = replay.Seal("mailgun", TOKEN, replay.digest({"recipient": "gone@example.com"}), expires)
    second = replay.Seal("mailgun", TOKEN, replay.digest({"recipient": "ceo@example.com"}), expires)
    outcomes: dict[str, object] = {}
    recorded, release = threading.Event(), threading.Event()

    def hold_first() -> None:
        with ctx.db.write() as conn:
            outcomes["first"] = replay.remember(conn, first, now)
            recorded.set()
            release.wait(10)

    def try_second() -> None:
        try:
            with ctx.db.write() as conn:
                outcomes["second"] = replay.remember(conn, second, now)
        except Conflict as exc:
            outcomes["second"] = exc.code

    holder = threading.Thread(target=hold_first)
    holder.start()
    assert recorded.wait(10)
    contender = threading.Thread(target=try_second)
    contender.start()
    release.set()
    holder.join(10)
    contender.join(10)
    assert outcomes == {"first": True, "second": "signature_replayed"}
