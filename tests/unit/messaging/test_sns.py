"""The parts of SNS verification that need no network: the string SNS signs, and which certificate
addresses are Amazon's."""

from __future__ import annotations

import pytest

from leadflow.kernel.errors import Forbidden
from leadflow.kernel.settings import Settings
from leadflow.messaging.feedback import sns

NOTIFICATION = {
    "Type": "Notification",
    "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
    "TopicArn": "arn:aws:sns:us-west-2:123456789012:MyTopic",
    "Subject": "My First Message",
    "Message": "Hello world!",
    "Timestamp": "2012-05-02T00:54:06.655Z",
    "SignatureVersion": "1",
    "Signature": "EXAMPLE",
    "SigningCertURL": "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
    "UnsubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
}


def test_a_notification_signs_its_fields_in_order() -> None:
    assert sns.string_to_sign(NOTIFICATION) == (
        b"Message\nHello world!\n"
        b"MessageId\n22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324\n"
        b"Subject\nMy First Message\n"
        b"Timestamp\n2012-05-02T00:54:06.655Z\n"
        b"TopicArn\narn:aws:sns:us-west-2:123456789012:MyTopic\n"
        b"Type\nNotification\n"
    )


def test_a_notification_without_subject_leaves_it_out() -> None:
    for without in (
        {k: v for k, v in NOTIFICATION.items() if k != "Subject"},
        {**NOTIFICATION, "Subject": None},
    ):
        assert b"Subject" not in sns.string_to_sign(without)


def test_a_confirmation_signs_its_url_and_token() -> None:
    message = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "m",
        "Token": "t",
        "TopicArn": "arn",
        "Message": "You have chosen to subscribe",
        "SubscribeURL": "https://sns.us-west-2.amazonaws.com/?Action=ConfirmSubscription",
        "Timestamp": "2012-04-26T20:45:04.751Z",
    }
    assert sns.string_to_sign(message).decode().split("\n")[::2] == [
        "Message",
        "MessageId",
        "SubscribeURL",
        "Timestamp",
        "Token",
        "TopicArn",
        "Type",
        "",
    ]
    with pytest.raises(Forbidden, match="no Token"):
        sns.string_to_sign({**message, "Token": None})


@pytest.mark.parametrize(
    "url",
    [
        "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-f3ecfb7224c7233fe7bb5f59f96de52f.pem",
        "https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-1.pem",
    ],
)
def test_amazon_certificate_addresses(url: str) -> None:
    sns.check_cert_url(url, Settings())


@pytest.mark.parametrize(
    "url",
    [
        "http://sns.us-west-2.amazonaws.com/SimpleNotificationService-1.pem",
        "https://sns.us-west-2.amazonaws.com.evil.com/SimpleNotificationService-1.pem",
        "https://sns.us-west-2.amazonaws.com:8443/SimpleNotificationService-1.pem",
        "https://user@sns.us-west-2.amazonaws.com/SimpleNotificationService-1.pem",
        "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-1.pem#x",
        "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-1.pem\n",
        "https://sns.us-west-2.amazonaws.com/SimpleNotificationService-1.txt",
        "https://s3.amazonaws.com/sns.us-west-2.amazonaws.com/SimpleNotificationService-1.pem",
        "https://sns.us-west-2.amazonaws.com\\@evil.com/SimpleNotificationService-1.pem",
    ],
)
def test_other_certificate_addresses_are_refused(url: str) -> None:
    with pytest.raises(Forbidden, match="SigningCertURL") as refused:
        sns.check_cert_url(url, Settings())
    assert refused.value.code == "invalid_sns_signature"
