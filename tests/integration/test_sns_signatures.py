"""Amazon SNS message signatures, verified against a real certificate served over HTTP, on both databases.

The peer (:mod:`tests.peers.sns`) signs with a real RSA key; ``LOCAL_CERTS`` lets leadflow fetch its
certificate from 127.0.0.1 instead of ``sns.<region>.amazonaws.com``. Every refusal is ``403
invalid_sns_signature`` and changes nothing.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.messaging.feedback import sns
from leadflow.messaging.models import suppressions
from leadflow.tables import metadata
from leadflow.webhooks.models import webhook_replay_tokens
from tests.peers.http_receiver import HttpReceiver, Reply
from tests.peers.sns import LOCAL_CERTS, SnsPeer, rsa_key, sns_time
from tests.support.http import bearer

SES = "/api/v1/email/feedback/ses"
BOUNCE = {
    "notificationType": "Bounce",
    "bounce": {
        "bounceType": "Permanent",
        "bounceSubType": "General",
        "bouncedRecipients": [{"emailAddress": "gone@example.com", "diagnosticCode": "smtp; 550 5.1.1"}],
    },
    "mail": {"messageId": "0100018f-ses-own-id"},
}
AMAZON_CERT = "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"

local = pytest.mark.settings(**LOCAL_CERTS)


def _post(client: TestClient, key: str, message: dict[str, Any]) -> Any:
    headers = {**bearer(key), "Content-Type": "text/plain; charset=UTF-8"}  # as SNS sends it
    return client.post(SES, content=json.dumps(message), headers=headers)


def _suppressed(ctx: AppContext) -> list[str]:
    with ctx.db.read() as conn:
        return list(conn.execute(sa.select(suppressions.c.email)).scalars())


def _rows(ctx: AppContext) -> dict[str, int]:
    with ctx.db.read() as conn:
        return {
            table.name: conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in metadata.sorted_tables
        }


def _refusals(ctx: AppContext) -> float:
    found = ctx.metrics.registry.get_sample_value(
        "leadflow_http_errors_total", {"code": "invalid_sns_signature"}
    )
    return found or 0.0


def _assert_refused(ctx: AppContext, answer: Any, before: dict[str, int], reason: str) -> None:
    assert answer.status_code == 403, answer.text
    error = answer.json()["error"]
    assert error["code"] == "invalid_sns_signature"
    assert reason in error["message"]
    assert _rows(ctx) == before


@local
@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_bounce_is_applied(
    ctx: AppContext, client: TestClient, admin_key: str, sns_peer: SnsPeer, version: str
) -> None:
    """SignatureVersion 1 (SHA1withRSA) and 2 (SHA256withRSA): verified, then applied as before."""
    answer = _post(client, admin_key, sns_peer.notification(BOUNCE, version=version))
    assert answer.json() == {"applied": 1}, answer.text
    assert _suppressed(ctx) == ["gone@example.com"]


@local
def test_a_subject_is_signed_when_present(
    ctx: AppContext, client: TestClient, admin_key: str, sns_peer: SnsPeer
) -> None:
    signed = sns_peer.notification(BOUNCE, Subject="Amazon SES Email Event Notification")
    assert _post(client, admin_key, signed).json() == {"applied": 1}
    before = _rows(ctx)
    other = sns_peer.notification(BOUNCE, Subject="one subject")
    answer = _post(client, admin_key, {**other, "Subject": "another subject"})
    _assert_refused(ctx, answer, before, "does not match")


@local
def test_the_certificate_is_fetched_once_for_many_messages(
    ctx: AppContext, client: TestClient, admin_key: str, sns_peer: SnsPeer, clock: VirtualClock
) -> None:
    for version in ("1", "2"):
        assert _post(client, admin_key, sns_peer.notification(BOUNCE, version=version)).status_code == 200
    assert sns_peer.fetches == 1
    clock.advance(sns.CERT_TTL + timedelta(minutes=1))  # kept for a day, then fetched again
    assert _post(client, admin_key, sns_peer.notification(BOUNCE)).status_code == 200
    assert sns_peer.fetches == 2


@local
def test_a_notification_delivered_again_applies_nothing(
    ctx: AppContext, client: TestClient, admin_key: str, sns_peer: SnsPeer
) -> None:
    """SNS retries with the same MessageId: remembered with what was signed, applied once."""
    message = sns_peer.notification(BOUNCE)
    assert _post(client, admin_key, message).json() == {"applied": 1}
    assert _post(client, admin_key, message).json() == {"applied": 0}
    with ctx.db.read() as conn:
        tokens = conn.execute(sa.select(webhook_replay_tokens.c.source, webhook_replay_tokens.c.token)).all()
    assert [tuple(row) for row in tokens] == [("sns", message["MessageId"])]


@local
@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda m: {**m, "Message": m["Message"].replace("gone@", "other@")}, "does not match"),
        (lambda m: {**m, "MessageId": "another-id"}, "does not match"),
        (lambda m: {**m, "Signature": "bm90IGEgc2lnbmF0dXJl"}, "does not match"),
        (lambda m: {**m, "Signature": "%%%"}, "not base64"),
        (lambda m: {key: value for key, value in m.items() if key != "Signature"}, "no Signature"),
        (lambda m: {**m, "SignatureVersion": "3"}, "unknown SNS SignatureVersion '3'"),
        (lambda m: {key: value for key, value in m.items() if key != "SignatureVersion"}, "SignatureVersion"),
        (lambda m: {**m, "Type": "Notice"}, "not an SNS message"),
        (lambda m: json.loads(m["Message"]), "raw message delivery"),  # the notification alone
        (lambda m: {**m, "SigningCertURL": AMAZON_CERT}, "not an Amazon SNS address"),  # not the local peer
        (lambda m: {**m, "SigningCertURL": m["SigningCertURL"] + "?x=1"}, "SigningCertURL"),
        (lambda m: {**m, "SigningCertURL": m["SigningCertURL"][:-4] + ".txt"}, "SigningCertURL"),
    ],
)
def test_a_message_that_does_not_verify_changes_nothing(
    ctx: AppContext, client: TestClient, admin_key: str, sns_peer: SnsPeer, change: Any, reason: str
) -> None:
    before = _rows(ctx)
    answer = _post(client, admin_key, change(sns_peer.notification(BOUNCE)))
    _assert_refused(ctx, answer, before, reason)
    assert _refusals(ctx) == 1


@local
def test_a_message_signed_with_another_key_is_refused(
    ctx: AppContext, client: TestClient, admin_key: str, sns_peer: SnsPeer
) -> None:
    before = _rows(ctx)
    message = sns_peer.envelope("Notification", Message=json.dumps(BOUNCE))
    answer = _post(client, admin_key, sns_peer.sign(message, key=rsa_key(1)))
    _assert_refused(ctx, answer, before, "does not match")


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-east-1.amazonaws.com.evil.com/SimpleNotificationService-1.pem",
        "http://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
        "https://sns.us-east-1.amazonaws.com@evil.com/SimpleNotificationService-1.pem",
        "https://evil.com/sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem",
        "https://sns.us-east-1.amazonaws.com/deeper/SimpleNotificationService-1.pem",
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-1.pem?.pem",
    ],
)
def test_a_certificate_outside_amazon_sns_is_never_fetched(
    ctx: AppContext, client: TestClient, admin_key: str, sns_peer: SnsPeer, url: str
) -> None:
    """With the default LEADFLOW_SNS_CERT_URL_PATTERN: https, an sns.<region>.amazonaws.com host, a .pem."""
    before = _rows(ctx)
    message = sns_peer.envelope("Notification", Message=json.dumps(BOUNCE))
    answer = _post(client, admin_key, sns_peer.sign(message, cert_url=url))
    _assert_refused(ctx, answer, before, "SigningCertURL")
    assert sns_peer.fetches == 0


def test_amazon_addresses_pass_the_default_pattern(ctx: AppContext) -> None:
    for url in (AMAZON_CERT, "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-1.pem"):
        sns.check_cert_url(url, ctx.settings)


@pytest.mark.settings(sns_cert_url_pattern=LOCAL_CERTS["sns_cert_url_pattern"])
def test_a_local_certificate_needs_the_network_guard_to_admit_it(
    ctx: AppContext, client: TestClient, admin_key: str, sns_peer: SnsPeer
) -> None:
    """The pattern admits 127.0.0.1, the network guard does not (no LEADFLOW_NETWORK_ALLOW)."""
    before = _rows(ctx)
    answer = _post(client, admin_key, sns_peer.notification(BOUNCE))
    _assert_refused(ctx, answer, before, "blocked: 127.0.0.1 is loopback")
    assert sns_peer.fetches == 0


@local
def test_an_expired_certificate_is_refused(
    ctx: AppContext, client: TestClient, admin_key: str, clock: VirtualClock
) -> None:
    before = _rows(ctx)
    with SnsPeer(clock, expired=True) as expired:
        answer = _post(client, admin_key, expired.notification(BOUNCE))
    _assert_refused(ctx, answer, before, "not valid now")


@local
def test_a_stale_message_is_refused_as_a_replay(
    ctx: AppContext, client: TestClient, admin_key: str, sns_peer: SnsPeer, clock: VirtualClock
) -> None:
    """SNS retries for up to an hour; a message older than that is a replay, and so is one from the
    future."""
    message = sns_peer.notification(BOUNCE)
    clock.advance(timedelta(minutes=59))
    assert _post(client, admin_key, message).json() == {"applied": 1}  # SNS retrying
    before = _rows(ctx)
    clock.advance(timedelta(minutes=2))
    _assert_refused(ctx, _post(client, admin_key, message), before, "more than an hour old")
    later = sns_time(clock.now() + timedelta(minutes=6))
    ahead = sns_peer.sign(sns_peer.envelope("Notification", Message=json.dumps(BOUNCE), Timestamp=later))
    _assert_refused(ctx, _post(client, admin_key, ahead), before, "ahead")


@local
@pytest.mark.parametrize(
    ("reply", "status", "code"),
    [
        (Reply(404, b"<Error>NoSuchKey</Error>"), 403, "invalid_sns_signature"),
        (Reply(200, b"not a certificate"), 403, "invalid_sns_signature"),
        (Reply(503, b"busy"), 502, "sns_certificate_unavailable"),
    ],
)
def test_a_certificate_that_cannot_be_had(
    ctx: AppContext,
    client: TestClient,
    admin_key: str,
    clock: VirtualClock,
    reply: Reply,
    status: int,
    code: str,
) -> None:
    """Nothing at the address (or not a certificate): refused; SNS busy: 502, so SNS retries later."""
    before = _rows(ctx)
    with SnsPeer(clock) as peer:
        peer.receiver.default = reply
        answer = _post(client, admin_key, peer.notification(BOUNCE))
    assert (answer.status_code, answer.json()["error"]["code"]) == (status, code)
    assert _rows(ctx) == before


@local
def test_an_unsubscribe_confirmation_is_verified_and_applies_nothing(
    ctx: AppContext, client: TestClient, admin_key: str, sns_peer: SnsPeer
) -> None:
    message = sns_peer.sign(
        sns_peer.envelope(
            "UnsubscribeConfirmation",
            Token="2336412f37f",
            Message="You have unsubscribed.",
            SubscribeURL="https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription",
        )
    )
    assert _post(client, admin_key, message).json() == {"applied": 0}
    before = _rows(ctx)
    _assert_refused(ctx, _post(client, admin_key, {**message, "Token": "other"}), before, "does not match")


@pytest.mark.settings(**LOCAL_CERTS, sns_subscribe_url_pattern=r"^http://127\.0\.0\.1:\d+/")
def test_a_confirmation_that_does_not_verify_is_never_confirmed(
    client: TestClient, admin_key: str, sns_peer: SnsPeer
) -> None:
    with HttpReceiver() as subscribe:
        message = sns_peer.confirmation(f"{subscribe.url}/?Action=ConfirmSubscription&Token=2336412f37f")
        answer = _post(client, admin_key, {**message, "Token": "forged"})
        assert not subscribe.wait_for(1, timeout=0.3)
    assert (answer.status_code, answer.json()["error"]["code"]) == (403, "invalid_sns_signature")
