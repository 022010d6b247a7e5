"""Provider webhooks as providers can send them: the key in the address they call (Basic credentials),
and Amazon SNS's subscription handshake answered against a real HTTP peer, on both databases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from leadflow.api.app import create_app
from leadflow.kernel.clock import VirtualClock
from leadflow.kernel.context import AppContext
from leadflow.kernel.settings import Settings
from leadflow.messaging import public
from leadflow.messaging.models import suppressions
from leadflow.runtime.context import build_context
from tests.peers.http_receiver import HttpReceiver, Reply

SENDGRID = "/api/v1/email/feedback/sendgrid"
SES = "/api/v1/email/feedback/ses"
BOUNCE = [
    {"event": "bounce", "email": "gone@example.com", "type": "bounce", "reason": "550 5.1.1 no such user"}
]
TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"
LOCAL_SNS = r"^http://127\.0\.0\.1:\d+/"
KIND = "SubscriptionConfirmation"


def _client(ctx: AppContext) -> TestClient:
    app = create_app(ctx, run_worker=False)
    app.include_router(public.router)
    return TestClient(app)


@pytest.fixture
def web(ctx: AppContext) -> Iterator[TestClient]:
    with _client(ctx) as client:
        yield client


@pytest.fixture
def local_sns(settings: Settings, clock: VirtualClock) -> Iterator[TestClient]:
    """The API with SubscribeURLs on 127.0.0.1 allowed (the test's SNS peer)."""
    context = build_context(settings.model_copy(update={"sns_subscribe_url_pattern": LOCAL_SNS}), clock=clock)
    with _client(context) as client:
        yield client
    context.close()


def _suppressed(ctx: AppContext) -> list[str]:
    with ctx.db.read() as conn:
        return list(conn.execute(sa.select(suppressions.c.email)).scalars())


def _confirmation(url: str) -> str:
    return json.dumps(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "Token": "2336412f37f",
            "TopicArn": TOPIC,
            "Message": f"You have chosen to subscribe to the topic {TOPIC}.",
            "SubscribeURL": f"{url}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token=2336412f37f",
            "Timestamp": "2026-03-02T09:00:00.000Z",
        }
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


def test_an_sns_subscription_confirmation_is_confirmed(local_sns: TestClient, admin_key: str) -> None:
    with HttpReceiver() as sns:
        sns.reply(Reply(200, b"<ConfirmSubscriptionResponse/>", {"Content-Type": "text/xml"}))
        answer = local_sns.post(
            SES,
            content=_confirmation(sns.url),
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


def test_a_refused_confirmation_is_a_502(local_sns: TestClient, admin_key: str) -> None:
    with HttpReceiver() as sns:
        sns.reply(Reply(403, b"<Error><Code>AuthorizationError</Code></Error>"))
        answer = local_sns.post(SES, content=_confirmation(sns.url), auth=("leadflow", admin_key))
    assert (answer.status_code, answer.json()["error"]["code"]) == (502, "sns_confirmation_failed")
    assert "403" in answer.json()["error"]["message"]


def test_a_subscribe_url_outside_amazon_sns_is_never_fetched(web: TestClient, admin_key: str) -> None:
    with HttpReceiver() as elsewhere:
        answer = web.post(SES, content=_confirmation(elsewhere.url), auth=("leadflow", admin_key))
        assert not elsewhere.wait_for(1, timeout=0.3)
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "untrusted_subscribe_url")


def test_a_payload_that_is_not_json_is_refused(web: TestClient, admin_key: str) -> None:
    answer = web.post(SES, content=b"Type=SubscriptionConfirmation", auth=("leadflow", admin_key))
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "invalid_feedback")
