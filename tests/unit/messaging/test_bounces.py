"""Bounce and complaint parsing: DSN and ARF emails, and each provider's webhook payloads."""

from __future__ import annotations

import json
from typing import Any

import pytest

from leadflow.messaging.feedback.bounces import Feedback, parse_dsn, parse_provider

OUR_ID = "01JQ8Z6M4T3V7W9X2Y5A000001@mail.leadflow.example"


def eml(text: str) -> bytes:
    """A message as it arrives over SMTP: CRLF line ends."""
    return text.replace("\n", "\r\n").encode()


POSTFIX_BOUNCE = eml(f"""\
Return-Path: <>
Received: by mail.leadflow.example (Postfix)
	id 4XyZ1234; Tue,  3 Mar 2026 10:15:02 +0000 (UTC)
Date: Tue,  3 Mar 2026 10:15:02 +0000 (UTC)
From: MAILER-DAEMON@mail.leadflow.example (Mail Delivery System)
Subject: Undelivered Mail Returned to Sender
To: bounces+01JQ8Z@mail.leadflow.example
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="4XyZ1234.1772532902/mail.leadflow.example"
Content-Transfer-Encoding: 7bit
Message-Id: <20260303101502.4XyZ1234@mail.leadflow.example>

This is a MIME-encapsulated message.

--4XyZ1234.1772532902/mail.leadflow.example
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mail.leadflow.example.

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients. It's attached below.

<Jane.Doe@Example.org>: host mx.example.org[203.0.113.7] said: 550 5.1.1
    <jane.doe@example.org>: Recipient address rejected: User unknown in virtual
    mailbox table (in reply to RCPT TO command)

--4XyZ1234.1772532902/mail.leadflow.example
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.leadflow.example
X-Postfix-Queue-ID: 4XyZ1234
X-Postfix-Sender: rfc822; bounces+01JQ8Z@mail.leadflow.example
Arrival-Date: Tue,  3 Mar 2026 10:15:01 +0000 (UTC)

Final-Recipient: rfc822; jdoe@mailhost.example.org
Original-Recipient: rfc822;Jane.Doe@Example.org
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.example.org
Diagnostic-Code: smtp; 550 5.1.1 <jane.doe@example.org>: Recipient address
    rejected: User unknown in virtual mailbox table

--4XyZ1234.1772532902/mail.leadflow.example
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

Return-Path: <bounces+01JQ8Z@mail.leadflow.example>
Received: from app1 (app1.internal [10.0.0.5])
	by mail.leadflow.example (Postfix) with ESMTP id 4XyZ1234
	for <Jane.Doe@Example.org>; Tue,  3 Mar 2026 10:15:01 +0000 (UTC)
From: Acme <news@acme.example>
To: Jane.Doe@Example.org
Subject: Spring news
Message-ID: <{OUR_ID}>
Date: Tue, 03 Mar 2026 10:15:00 +0000

--4XyZ1234.1772532902/mail.leadflow.example--
""")

EXIM_BOUNCE = eml("""\
Return-path: <>
Received: from Debian-exim by mx1.example.net with local (Exim 4.96)
	id 1rgXYZ-000ABC-12
	for bounces+01JQ9A@mail.leadflow.example; Tue, 03 Mar 2026 11:02:41 +0000
X-Failed-Recipients: bob@example.net, carol@example.net
Auto-Submitted: auto-replied
From: Mail Delivery System <Mailer-Daemon@mx1.example.net>
To: bounces+01JQ9A@mail.leadflow.example
References: <01JQ9A0000000000000000000B@mail.leadflow.example>
Content-Type: multipart/report; report-type=delivery-status; boundary=1709463761-eximdsn-1804289383
MIME-Version: 1.0
Subject: Mail delivery failed: returning message to sender
Message-Id: <E1rgXYZ-000ABC-12@mx1.example.net>
Date: Tue, 03 Mar 2026 11:02:41 +0000

--1709463761-eximdsn-1804289383
Content-type: text/plain; charset=us-ascii

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  bob@example.net
    host mx.example.net [192.0.2.10]
    SMTP error from remote mail server after RCPT TO:<bob@example.net>:
    550 5.7.1 Mailbox disabled for this recipient
  carol@example.net
    retry timeout exceeded

--1709463761-eximdsn-1804289383
Content-type: message/delivery-status

Reporting-MTA: dns; mx1.example.net

Action: failed
Final-Recipient: rfc822;Bob@Example.NET
Status: 5.0.0
Remote-MTA: dns; mx.example.net
Diagnostic-Code: smtp; 550 5.7.1 Mailbox disabled for this recipient

Action: failed
Final-Recipient: rfc822;carol@example.net
Status: 4.0.0
Diagnostic-Code: X-Exim; retry timeout exceeded

Action: delivered
Final-Recipient: rfc822;dave@example.net
Status: 2.0.0

--1709463761-eximdsn-1804289383
Content-type: message/rfc822

Return-path: <bounces+01JQ9A@mail.leadflow.example>
Received: from mail.leadflow.example ([198.51.100.25])
	by mx1.example.net with esmtps (TLS1.3) (Exim 4.96)
	id 1rgXYY-000ABB-0A; Tue, 03 Mar 2026 11:02:40 +0000
From: Acme <news@acme.example>
To: bob@example.net, carol@example.net, dave@example.net
Subject: Team update
Message-ID: <01JQ9A0000000000000000000B@mail.leadflow.example>
Date: Tue, 03 Mar 2026 11:02:39 +0000
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Hello team.

--1709463761-eximdsn-1804289383--
""")

DELAYED = eml(f"""\
Date: Tue,  3 Mar 2026 14:15:02 +0000 (UTC)
From: MAILER-DAEMON@mail.leadflow.example (Mail Delivery System)
Subject: Delayed Mail (still being retried)
To: bounces+01JQ8Z@mail.leadflow.example
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
	boundary="9AbC5678.1772547302/mail.leadflow.example"
Message-Id: <20260303141502.9AbC5678@mail.leadflow.example>

--9AbC5678.1772547302/mail.leadflow.example
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mail.leadflow.example.

####################################################################
# THIS IS A WARNING ONLY.  YOU DO NOT NEED TO RESEND YOUR MESSAGE. #
####################################################################

--9AbC5678.1772547302/mail.leadflow.example
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mail.leadflow.example
X-Postfix-Queue-ID: 9AbC5678
Arrival-Date: Tue,  3 Mar 2026 10:15:01 +0000 (UTC)

Final-Recipient: rfc822; ops@slow.example
Original-Recipient: rfc822;ops@slow.example
Action: delayed
Status: 4.4.1
Diagnostic-Code: X-Postfix; connect to mx.slow.example[192.0.2.44]:25:
    Connection timed out
Will-Retry-Until: Fri,  6 Mar 2026 10:15:01 +0000 (UTC)

--9AbC5678.1772547302/mail.leadflow.example
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: Acme <news@acme.example>
To: ops@slow.example
Subject: Spring news
Message-ID: <{OUR_ID}>

--9AbC5678.1772547302/mail.leadflow.example--
""")

ARF = eml(f"""\
Return-Path: <fbl-noreply@fbl.mailbox.example>
From: Feedback Loop <fbl@fbl.mailbox.example>
To: abuse@leadflow.example
Subject: FW: Spring news
Date: Wed, 04 Mar 2026 08:01:10 +0000
Message-ID: <fbl.20260304080110.77@fbl.mailbox.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report;
	boundary="----=_Part_ARF_1"

------=_Part_ARF_1
Content-Type: text/plain; charset="US-ASCII"
Content-Transfer-Encoding: 7bit

This is an email abuse report for an email message received from IP
198.51.100.25 on Tue, 03 Mar 2026 10:15:00 +0000.

------=_Part_ARF_1
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: ExampleFBL/1.0
Version: 1
Original-Mail-From: <bounces+01JQ8Z@mail.leadflow.example>
Arrival-Date: Tue, 03 Mar 2026 10:15:00 +0000
Source-IP: 198.51.100.25
Reported-Domain: acme.example

------=_Part_ARF_1
Content-Type: message/rfc822
Content-Disposition: inline

Received: from mail.leadflow.example (mail.leadflow.example [198.51.100.25])
	by mx.mailbox.example with ESMTPS id abc123
	for <Sam.Smith@mailbox.example>; Tue, 03 Mar 2026 10:15:00 +0000
From: Acme <news@acme.example>
To: "Sam Smith" <Sam.Smith@mailbox.example>
Subject: Spring news
Message-ID: <{OUR_ID}>
Date: Tue, 03 Mar 2026 10:14:59 +0000
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Hello Sam, spring is here.

------=_Part_ARF_1--
""")


# --- DSN and ARF --------------------------------------------------------------------------------------


def test_postfix_bounce_with_headers_part() -> None:
    assert parse_dsn(POSTFIX_BOUNCE) == [
        Feedback(
            kind="bounce",
            email="jane.doe@example.org",  # the address we sent to, not the one it was forwarded to
            hard=True,
            message_id=OUR_ID,
            detail=(
                "550 5.1.1 <jane.doe@example.org>: Recipient address rejected: User unknown in virtual "
                "mailbox table"
            ),
            provider="dsn",
        )
    ]


def test_exim_bounce_with_the_original_message() -> None:
    found = parse_dsn(EXIM_BOUNCE)
    message_id = "01JQ9A0000000000000000000B@mail.leadflow.example"
    assert found == [
        Feedback(
            "bounce",
            "bob@example.net",
            True,
            message_id,
            "550 5.7.1 Mailbox disabled for this recipient",
            "dsn",
        ),
        # a 4.x.x status with "failed": the server gave up retrying; a soft bounce
        Feedback("bounce", "carol@example.net", False, message_id, "retry timeout exceeded", "dsn"),
    ]


def test_delayed_dsn() -> None:
    assert parse_dsn(DELAYED) == [
        Feedback(
            "delayed",
            "ops@slow.example",
            False,
            OUR_ID,
            "connect to mx.slow.example[192.0.2.44]:25: Connection timed out",
            "dsn",
        )
    ]


def test_arf_abuse_report() -> None:
    assert parse_dsn(ARF) == [
        Feedback(
            "complaint", "sam.smith@mailbox.example", True, OUR_ID, "abuse report by ExampleFBL/1.0", "arf"
        )
    ]


def test_arf_prefers_the_envelope_recipient() -> None:
    raw = ARF.replace(
        b"Reported-Domain: acme.example",
        b"Reported-Domain: acme.example\r\nOriginal-Rcpt-To: <sam@alias.example>",
    )
    assert [feedback.email for feedback in parse_dsn(raw)] == ["sam@alias.example"]


@pytest.mark.parametrize("feedback_type", [b"not-spam", b"virus", b"auth-failure", b"fraud"])
def test_other_arf_feedback_types_are_not_complaints(feedback_type: bytes) -> None:
    assert parse_dsn(ARF.replace(b"Feedback-Type: abuse", b"Feedback-Type: " + feedback_type)) == []


def test_without_a_returned_message_the_message_id_is_unknown() -> None:
    raw = POSTFIX_BOUNCE.replace(b"Content-Type: text/rfc822-headers", b"Content-Type: text/plain")
    (feedback,) = parse_dsn(raw)
    assert feedback.message_id is None
    assert feedback.email == "jane.doe@example.org"


def test_final_recipient_when_there_is_no_original_recipient() -> None:
    raw = POSTFIX_BOUNCE.replace(b"Original-Recipient: rfc822;Jane.Doe@Example.org\r\n", b"")
    assert [feedback.email for feedback in parse_dsn(raw)] == ["jdoe@mailhost.example.org"]


def test_hardness_falls_back_on_the_smtp_reply_code() -> None:
    soft = POSTFIX_BOUNCE.replace(b"Status: 5.1.1\r\n", b"").replace(b"smtp; 550 5.1.1", b"smtp; 452 4.2.2")
    assert [feedback.hard for feedback in parse_dsn(soft)] == [False]
    unknown = POSTFIX_BOUNCE.replace(b"Status: 5.1.1\r\n", b"").replace(
        b"Diagnostic-Code: smtp; 550", b"X-Note: 550"
    )
    (feedback,) = parse_dsn(unknown)
    assert feedback.hard is True  # "failed" with nothing more: a permanent failure
    assert feedback.detail == "failed"


def test_successful_actions_are_not_feedback() -> None:
    for action in (b"delivered", b"relayed", b"expanded"):
        assert parse_dsn(POSTFIX_BOUNCE.replace(b"Action: failed", b"Action: " + action)) == []


def test_global_dsn() -> None:
    raw = POSTFIX_BOUNCE.replace(b"message/delivery-status", b"message/global-delivery-status").replace(
        b"text/rfc822-headers", b"message/global-headers"
    )
    assert parse_dsn(raw) == parse_dsn(POSTFIX_BOUNCE)


def test_malformed_headers_do_not_break_parsing() -> None:
    """The stdlib's header parser raises on some malformed values; the fields are read as sent instead."""
    raw = POSTFIX_BOUNCE.replace(f"Message-ID: <{OUR_ID}>".encode(), b"Message-ID: <<>>")
    assert [(f.email, f.message_id) for f in parse_dsn(raw)] == [("jane.doe@example.org", None)]
    raw = ARF.replace(b'To: "Sam Smith" <Sam.Smith@mailbox.example>', b"To: undisclosed-recipients:;")
    assert parse_dsn(raw) == []


@pytest.mark.parametrize(
    "raw",
    [
        eml("From: jane@example.org\nTo: news@acme.example\nSubject: Re: Spring news\n\nThanks!\n"),
        eml(
            'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n'
            "--b\nContent-Type: text/plain\n\nOut of office until Monday.\n--b--\n"
        ),
        eml(
            "MIME-Version: 1.0\n"
            'Content-Type: multipart/report; report-type=disposition-notification; boundary="b"\n\n--b--\n'
        ),
        b"",
        b"\x00\xff\xfe garbage \x00",
    ],
)
def test_anything_else_is_no_feedback(raw: bytes) -> None:
    assert parse_dsn(raw) == []


# --- Providers ----------------------------------------------------------------------------------------

SENDGRID = [
    {
        "email": "ann@example.com",
        "timestamp": 1772532900,
        "smtp-id": f"<{OUR_ID}>",
        "event": "processed",
        "sg_event_id": "cHJvY2Vzc2VkLTEyMzQ1",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
    },
    {
        "email": "Ann@Example.com",
        "timestamp": 1772532910,
        "smtp-id": f"<{OUR_ID}>",
        "event": "bounce",
        "category": ["newsletter"],
        "sg_event_id": "Ym91bmNlLTEyMzQ1",
        "sg_message_id": "14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0",
        "reason": "550 5.1.1 The email account that you tried to reach does not exist.",
        "status": "5.1.1",
        "type": "bounce",
        "bounce_classification": "Invalid Address",
        "tls": 1,
    },
    {
        "email": "ben@example.com",
        "timestamp": 1772532911,
        "smtp-id": "<other@mail.leadflow.example>",
        "event": "bounce",
        "reason": "550 5.7.1 Message rejected due to local policy",
        "status": "5.7.1",
        "type": "blocked",
        "bounce_classification": "Reputation",
    },
    {"email": "cid@example.com", "timestamp": 1772532912, "event": "dropped", "reason": "Bounced Address"},
    {"email": "dee@example.com", "timestamp": 1772532913, "event": "dropped", "reason": "Spam Content"},
    {"email": "eve@example.com", "timestamp": 1772532914, "event": "spamreport", "smtp-id": f"<{OUR_ID}>"},
    {
        "email": "fay@example.com",
        "timestamp": 1772532915,
        "event": "deferred",
        "response": "400 try again later",
        "attempt": "5",
    },
    {"email": "gus@example.com", "timestamp": 1772532916, "event": "open", "useragent": "Mozilla/5.0"},
]


def test_sendgrid() -> None:
    assert parse_provider("sendgrid", SENDGRID) == [
        Feedback(
            "bounce",
            "ann@example.com",
            True,
            OUR_ID,
            "550 5.1.1 The email account that you tried to reach does not exist.",
            "sendgrid",
        ),
        Feedback(
            "bounce",
            "ben@example.com",
            False,
            "other@mail.leadflow.example",
            "550 5.7.1 Message rejected due to local policy",
            "sendgrid",
        ),
        Feedback("bounce", "cid@example.com", True, None, "Bounced Address", "sendgrid"),
        Feedback("bounce", "dee@example.com", False, None, "Spam Content", "sendgrid"),
        Feedback("complaint", "eve@example.com", True, OUR_ID, "spamreport", "sendgrid"),
        Feedback("delayed", "fay@example.com", False, None, "400 try again later", "sendgrid"),
    ]


def test_sendgrid_raw_json_body() -> None:
    assert parse_provider("sendgrid", json.dumps(SENDGRID).encode()) == parse_provider("sendgrid", SENDGRID)


POSTMARK_BOUNCE = {
    "RecordType": "Bounce",
    "MessageStream": "outbound",
    "ID": 4323372036854775807,
    "Type": "HardBounce",
    "TypeCode": 1,
    "Name": "Hard bounce",
    "Tag": "Test",
    "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
    "Metadata": {"message_id": f"<{OUR_ID}>", "contact": "c_42"},
    "ServerID": 23,
    "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
    "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
    "Email": "John@Example.com",
    "From": "news@acme.example",
    "BouncedAt": "2026-03-03T10:15:02Z",
    "DumpAvailable": True,
    "Inactive": True,
    "CanActivate": True,
    "Subject": "Spring news",
}


def test_postmark_bounce() -> None:
    assert parse_provider("postmark", POSTMARK_BOUNCE) == [
        Feedback(
            "bounce",
            "john@example.com",
            True,
            OUR_ID,
            "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
            "postmark",
        )
    ]


@pytest.mark.parametrize(
    ("bounce_type", "expected"),
    [
        ("SoftBounce", ("bounce", False)),
        ("BadEmailAddress", ("bounce", True)),
        ("DnsError", ("bounce", False)),
        ("Transient", ("delayed", False)),
        ("SpamComplaint", ("complaint", True)),
        ("AutoResponder", None),
        ("Subscribe", None),
        ("ChallengeVerification", None),
    ],
)
def test_postmark_bounce_types(bounce_type: str, expected: tuple[str, bool] | None) -> None:
    payload = {**POSTMARK_BOUNCE, "Type": bounce_type, "Metadata": {}, "Details": ""}
    found = parse_provider("postmark", payload)
    assert [(feedback.kind, feedback.hard) for feedback in found] == ([expected] if expected else [])
    assert all(feedback.message_id is None for feedback in found)  # Postmark's MessageID is not ours
    assert all(feedback.detail == POSTMARK_BOUNCE["Description"] for feedback in found)


def test_postmark_spam_complaint_and_other_records() -> None:
    complaint = {
        "RecordType": "SpamComplaint",
        "MessageStream": "outbound",
        "ID": 42,
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Name": "Spam complaint",
        "MessageID": "00000000-0000-0000-0000-000000000000",
        "Description": "The subscriber explicitly marked this message as spam.",
        "Details": "Test spam complaint details",
        "Email": "jane@example.com",
        "From": "news@acme.example",
        "BouncedAt": "2026-03-04T08:01:10Z",
        "Inactive": True,
        "Metadata": {"message_id": OUR_ID},
    }
    delivery = {"RecordType": "Delivery", "Recipient": "jane@example.com", "MessageID": "x", "Metadata": {}}
    assert parse_provider("postmark", [complaint, delivery]) == [
        Feedback("complaint", "jane@example.com", True, OUR_ID, "Test spam complaint details", "postmark")
    ]


def mailgun(event_data: dict[str, Any]) -> dict[str, Any]:
    return {
        "signature": {
            "timestamp": "1772532902",
            "token": "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0",
            "signature": "d2271d12299f6592d9d44cd9d250f0704e4674c30d79d07c47a66f95ce71cf55",
        },
        "event-data": event_data,
    }


MAILGUN_FAILED = {
    "id": "G9Bn5sl1TC6nu79C8C0bwg",
    "timestamp": 1772532902.1,
    "log-level": "error",
    "event": "failed",
    "severity": "permanent",
    "reason": "suppress-bounce",
    "envelope": {"sender": "bounces@mg.acme.example", "transport": "smtp", "targets": "alice@example.com"},
    "flags": {"is-routed": False, "is-authenticated": True, "is-system-test": False, "is-test-mode": False},
    "delivery-status": {
        "attempt-no": 1,
        "message": "5.1.1 The email account that you tried to reach does not exist.",
        "code": 550,
        "enhanced-code": "5.1.1",
        "description": "",
        "session-seconds": 0.1,
    },
    "message": {
        "headers": {
            "to": "Alice <Alice@Example.com>",
            "message-id": OUR_ID,
            "from": "Acme <news@acme.example>",
            "subject": "Spring news",
        },
        "attachments": [],
        "size": 111,
    },
    "recipient": "Alice@Example.com",
    "recipient-domain": "example.com",
    "storage": {"url": "https://se.api.mailgun.net/v3/domains/acme.example/messages/message_key", "key": "k"},
    "campaigns": [],
    "tags": ["newsletter"],
    "user-variables": {},
}


def test_mailgun_permanent_failure() -> None:
    assert parse_provider("mailgun", mailgun(MAILGUN_FAILED)) == [
        Feedback(
            "bounce",
            "alice@example.com",
            True,
            OUR_ID,
            "550 5.1.1 The email account that you tried to reach does not exist.",
            "mailgun",
        )
    ]


def test_mailgun_temporary_failures_are_retried_until_mailgun_gives_up() -> None:
    temporary = {**MAILGUN_FAILED, "severity": "temporary", "reason": "generic"}
    assert [(f.kind, f.hard) for f in parse_provider("mailgun", mailgun(temporary))] == [("delayed", False)]
    gave_up = {**temporary, "reason": "old"}
    assert [(f.kind, f.hard) for f in parse_provider("mailgun", mailgun(gave_up))] == [("bounce", False)]


def test_mailgun_complaint_and_other_events() -> None:
    complained = {
        "id": "-Agny091SquKnsrW2NEKUA",
        "timestamp": 1772600000.2,
        "log-level": "warn",
        "event": "complained",
        "envelope": {"sending-ip": "173.193.210.33"},
        "flags": {"is-test-mode": False},
        "message": {
            "headers": {"to": "bob@example.com", "message-id": OUR_ID},
            "attachments": [],
            "size": 111,
        },
        "recipient": "bob@example.com",
        "campaigns": [],
        "tags": [],
        "user-variables": {},
    }
    assert parse_provider("mailgun", mailgun(complained)) == [
        Feedback("complaint", "bob@example.com", True, OUR_ID, "complained", "mailgun")
    ]
    assert parse_provider("mailgun", mailgun({**complained, "event": "delivered"})) == []


SES_BOUNCE: dict[str, Any] = {
    "notificationType": "Bounce",
    "bounce": {
        "feedbackId": "0100018e0a1b2c3d-aaaa-bbbb-cccc-ddddeeeeffff-000000",
        "bounceType": "Permanent",
        "bounceSubType": "General",
        "bouncedRecipients": [
            {
                "emailAddress": "Jane@Example.com",
                "action": "failed",
                "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 user unknown",
            },
            {"emailAddress": "richard@example.com"},
        ],
        "timestamp": "2026-03-03T10:15:03.000Z",
        "remoteMtaIp": "203.0.113.7",
        "reportingMTA": "dsn; a8-70.smtp-out.amazonses.com",
    },
    "mail": {
        "timestamp": "2026-03-03T10:15:01.000Z",
        "source": "news@acme.example",
        "sourceArn": "arn:aws:ses:eu-west-1:123456789012:identity/acme.example",
        "sourceIp": "198.51.100.25",
        "sendingAccountId": "123456789012",
        "messageId": "0102018e0a1b2c3d-11111111-2222-3333-4444-555555555555-000000",
        "destination": ["Jane@Example.com", "richard@example.com"],
        "headersTruncated": False,
        "headers": [
            {"name": "From", "value": "Acme <news@acme.example>"},
            {"name": "To", "value": "Jane@Example.com, richard@example.com"},
            {"name": "Message-ID", "value": f"<{OUR_ID}>"},
            {"name": "Subject", "value": "Spring news"},
        ],
        "commonHeaders": {
            "from": ["Acme <news@acme.example>"],
            "to": ["Jane@Example.com", "richard@example.com"],
            "messageId": f"<{OUR_ID}>",
            "subject": "Spring news",
        },
    },
}


def sns(message: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:eu-west-1:123456789012:ses-feedback",
        "Message": json.dumps(message),
        "Timestamp": "2026-03-03T10:15:04.000Z",
        "SignatureVersion": "2",
        "Signature": "EXAMPLEpH+...",
        "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0000000000.pem",
        "UnsubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=x",
    }


def test_ses_bounce_through_sns() -> None:
    expected = [
        Feedback("bounce", "jane@example.com", True, OUR_ID, "smtp; 550 5.1.1 user unknown", "ses"),
        Feedback("bounce", "richard@example.com", True, OUR_ID, "Permanent/General", "ses"),
    ]
    assert parse_provider("ses", sns(SES_BOUNCE)) == expected
    assert parse_provider("ses", SES_BOUNCE) == expected  # the notification itself


def test_ses_transient_bounce_is_soft_and_headers_give_the_message_id() -> None:
    mail = {key: value for key, value in SES_BOUNCE["mail"].items() if key != "commonHeaders"}
    bounce = {**SES_BOUNCE["bounce"], "bounceType": "Transient", "bounceSubType": "MailboxFull"}
    found = parse_provider("ses", sns({**SES_BOUNCE, "bounce": bounce, "mail": mail}))
    assert [(f.hard, f.message_id) for f in found] == [(False, OUR_ID), (False, OUR_ID)]


def test_ses_complaint_event_publishing_and_delays() -> None:
    complaint = {
        "eventType": "Complaint",
        "complaint": {
            "feedbackId": "0100018e-complaint",
            "complaintSubType": None,
            "complainedRecipients": [{"emailAddress": "Jane@Example.com"}],
            "timestamp": "2026-03-04T08:01:10.000Z",
            "userAgent": "ExampleFBL/1.0",
            "complaintFeedbackType": "abuse",
            "arrivalDate": "2026-03-03T10:15:00.000Z",
        },
        "mail": {"messageId": "ses-id", "destination": ["Jane@Example.com"]},
    }
    assert parse_provider("ses", sns(complaint)) == [
        Feedback("complaint", "jane@example.com", True, None, "abuse", "ses")
    ]
    delay = {
        "eventType": "DeliveryDelay",
        "deliveryDelay": {
            "timestamp": "2026-03-03T12:00:00.000Z",
            "delayType": "MailboxFull",
            "expirationTime": "2026-03-03T22:00:00.000Z",
            "delayedRecipients": [
                {
                    "emailAddress": "ops@slow.example",
                    "status": "4.2.2",
                    "diagnosticCode": "smtp; 452 4.2.2 Mailbox full",
                }
            ],
        },
        "mail": SES_BOUNCE["mail"],
    }
    assert parse_provider("ses", sns(delay)) == [
        Feedback("delayed", "ops@slow.example", False, OUR_ID, "smtp; 452 4.2.2 Mailbox full", "ses")
    ]


def test_ses_other_notifications_are_no_feedback() -> None:
    confirmation = {
        "Type": "SubscriptionConfirmation",
        "SubscribeURL": "https://sns.example/confirm",
        "Token": "t",
    }
    assert parse_provider("ses", confirmation) == []
    assert parse_provider("ses", sns({"notificationType": "Delivery", "mail": SES_BOUNCE["mail"]})) == []


def test_leadflow_format() -> None:
    payload = [
        {
            "type": "bounce",
            "email": "A@Example.com",
            "hard": True,
            "message_id": f"<{OUR_ID}>",
            "detail": "550",
        },
        {"type": "complaint", "email": "b@example.com"},
        {"type": "bounce", "email": "c@example.com", "detail": "mailbox full"},
    ]
    assert parse_provider("leadflow", payload) == [
        Feedback("bounce", "a@example.com", True, OUR_ID, "550", "leadflow"),
        Feedback("complaint", "b@example.com", True, None, "", "leadflow"),
        Feedback("bounce", "c@example.com", False, None, "mailbox full", "leadflow"),
    ]
    assert parse_provider("leadflow", payload[1]) == parse_provider("leadflow", [payload[1]])


def test_unknown_provider() -> None:
    with pytest.raises(ValueError, match="unknown feedback provider 'sparkpost'"):
        parse_provider("sparkpost", [])


@pytest.mark.parametrize(
    ("provider", "payload", "message"),
    [
        ("sendgrid", [{"event": "bounce", "reason": "x"}], r"sendgrid event 0: 'email'"),
        ("sendgrid", [{"event": "bounce", "email": "not an address"}], r"'email' is not an email address"),
        ("sendgrid", ["bounce"], r"sendgrid event 0: expected a JSON object, got str"),
        ("sendgrid", "[{", r"sendgrid payload: not valid JSON"),
        ("postmark", {"Type": "HardBounce", "Email": "a@example.com"}, r"'RecordType'"),
        ("mailgun", {"signature": {}}, r"mailgun event-data: expected a JSON object, got NoneType"),
        ("mailgun", mailgun({"event": "failed", "severity": "permanent"}), r"'recipient'"),
        ("ses", {"Type": "Notification", "Message": "{not json"}, r"ses Message: not valid JSON"),
        ("ses", sns({"notificationType": "Bounce", "mail": {}}), r"ses bounce: expected a JSON object"),
        (
            "ses",
            sns({"notificationType": "Bounce", "bounce": {"bouncedRecipients": "x"}}),
            r"bouncedRecipients",
        ),
        ("ses", sns({"mail": {}}), r"no notificationType or eventType"),
        (
            "leadflow",
            {"type": "unsubscribe", "email": "a@example.com"},
            r"type must be bounce, complaint or delayed",
        ),
        (
            "leadflow",
            {"type": "bounce", "email": "a@example.com", "hard": "yes"},
            r"hard must be true or false",
        ),
        ("leadflow", {"type": "bounce", "email": "a@example.com", "detail": 5}, r"'detail' must be a string"),
    ],
)
def test_malformed_payloads(provider: str, payload: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_provider(provider, payload)
