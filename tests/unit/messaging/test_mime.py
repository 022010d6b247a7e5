from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import parseaddr, parsedate_to_datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.messaging.build.mime import build, domain_of

DATE = datetime(2024, 5, 1, 12, 30, 15, tzinfo=UTC)
HTML = '<html><body><p>Hi Zoë — <a href="https://acme.example/?a=1&amp;b=2">go</a></p></body></html>'
TEXT = "Hi Zoë —\ngo: https://acme.example/?a=1&b=2\n"


def make(**overrides: Any) -> bytes:
    args: dict[str, Any] = {
        "from_addr": "Acme News <news@acme.example>",
        "to_addr": "zoe@example.com",
        "subject": "Your weekly digest",
        "html": HTML,
        "text": TEXT,
        "message_id": "01HX.abc@mail.acme.example",
        "date": DATE,
    }
    args.update(overrides)
    return build(**args)


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    assert not message.defects
    return message


def bodies(message: EmailMessage) -> tuple[str, str]:
    parts = list(message.iter_parts())
    assert [part.get_content_type() for part in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert not part.defects
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
        assert part.get_content_charset() == "utf-8"
    text, html = (str(part.get_content()).replace("\r\n", "\n") for part in parts)
    return text, html


def header_names(data: bytes) -> list[str]:
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    return re.findall(r"^([!-9;-~]+):", head, flags=re.MULTILINE)


def test_headers_and_parts_round_trip() -> None:
    message = parse(make())
    assert message["From"] == "Acme News <news@acme.example>"
    assert message["To"] == "zoe@example.com"
    assert message["Subject"] == "Your weekly digest"
    assert parsedate_to_datetime(message["Date"]) == DATE
    assert message["Message-ID"] == "<01HX.abc@mail.acme.example>"
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "multipart/alternative"
    assert bodies(message) == (TEXT, HTML)


def test_header_order_with_extra_headers_last() -> None:
    extra = [
        ("List-Unsubscribe", "<https://acme.example/u/abc>, <mailto:unsub@acme.example?subject=abc>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("X-Campaign", "spring"),
    ]
    data = make(headers=extra)
    assert header_names(data) == [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "X-Campaign",
    ]
    message = parse(data)
    assert message["List-Unsubscribe"] == extra[0][1]
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_output_uses_crlf_only_and_respects_line_limits() -> None:
    long_line = "word " * 60 + "x" * 300
    data = make(
        subject="A rather long subject line that needs folding because it goes on and on and on for a while",
        html="<p>" + long_line + "</p>",
        text=long_line + "\r\nmac\rline\nunix",
    )
    assert b"\r" not in data.replace(b"\r\n", b"")
    assert b"\n" not in data.replace(b"\r\n", b"")
    head, body = data.split(b"\r\n\r\n", 1)
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    text, html = bodies(parse(data))
    assert text == long_line + "\nmac\nline\nunix"
    assert html == "<p>" + long_line + "</p>"


def test_bodies_with_risky_lines_decode_to_the_originals() -> None:
    text = (
        "From the team\n.\n..dots\n.leading dot\ntrailing spaces   \ntab\tand =equals= \n"
        + "From "
        + "y" * 100
    )
    html = "<p>\nFrom here\n.\n</p>\n" + "é" * 200
    data = make(text=text, html=html)
    body = data.split(b"\r\n\r\n", 1)[1]
    assert not re.search(rb"(^|\r\n)From ", body)
    assert not re.search(rb"(^|\r\n)\.(\r\n|$)", body)
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert bodies(parse(data)) == (text, html)


def test_non_ascii_subject_and_display_names() -> None:
    subject = "Grüße aus Köln — “Sommer-Sale” 🌞 " * 4 + "Ende"
    data = make(
        subject=subject,
        from_addr="Équipe Café Marketing <news@acme.example>",
        to_addr="Zoë Ünïcode <zoe@example.com>",
    )
    head = data.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()
    assert max(len(line) for line in head.split(b"\r\n")) <= 78
    message = parse(data)
    assert message["Subject"] == subject.strip()  # a header value cannot start or end with whitespace
    assert parseaddr(str(message["From"])) == ("Équipe Café Marketing", "news@acme.example")
    assert parseaddr(str(message["To"])) == ("Zoë Ünïcode", "zoe@example.com")
    assert message["To"].addresses[0].display_name == "Zoë Ünïcode"


def test_ascii_display_names_with_specials_are_quoted() -> None:
    message = parse(make(from_addr='"Doe, John (Sales)" <john@acme.example>'))
    assert parseaddr(str(message["From"])) == ("Doe, John (Sales)", "john@acme.example")
    assert message["From"].addresses[0].addr_spec == "john@acme.example"


def test_display_name_looking_like_an_encoded_word_is_kept_literally() -> None:
    message = parse(make(from_addr='"=?utf-8?b?SGk=?= Team" <x@acme.example>'))
    assert message["From"].addresses[0].display_name == "=?utf-8?b?SGk=?= Team"


def test_internationalised_domain_is_idna_encoded() -> None:
    message = parse(make(to_addr="Jörg <jorg@bücher.example>"))
    assert parseaddr(str(message["To"])) == ("Jörg", "jorg@xn--bcher-kva.example")


def test_reply_to_and_unicode_extra_header() -> None:
    data = make(
        headers=[("Reply-To", "Équipe Support <help@acme.example>, ops@acme.example"), ("X-Note", "Été")]
    )
    message = parse(data)
    assert [a.addr_spec for a in message["Reply-To"].addresses] == ["help@acme.example", "ops@acme.example"]
    assert message["Reply-To"].addresses[0].display_name == "Équipe Support"
    assert message["X-Note"] == "Été"


def test_subject_looking_like_an_encoded_word_is_kept_literally() -> None:
    subject = "Literal =?utf-8?q?not_encoded?= text"
    assert parse(make(subject=subject))["Subject"] == subject


def test_deterministic_bytes_and_boundary_from_message_id() -> None:
    assert make() == make()
    other = make(message_id="other@mail.acme.example")
    boundary = parse(make()).get_boundary()
    assert boundary is not None
    assert boundary.startswith("=_")
    assert parse(other).get_boundary() != boundary
    assert make(message_id="<01HX.abc@mail.acme.example>") == make()


def test_explicit_boundary_is_used_and_checked() -> None:
    message = parse(make(boundary="my-boundary-123"))
    assert message.get_boundary() == "my-boundary-123"
    assert bodies(message) == (TEXT, HTML)
    with pytest.raises(ValueError, match="boundary"):
        make(boundary="bad boundary with spaces and ;")
    with pytest.raises(ValueError, match="occurs in the body"):
        make(boundary="abc", text="line\n--abc\n")


def test_date_keeps_its_offset_and_must_be_aware() -> None:
    paris = datetime(2024, 5, 1, 14, 30, 15, 999, tzinfo=timezone(timedelta(hours=2)))
    assert paris.replace(microsecond=0) == DATE  # the same instant...
    assert parse(make(date=DATE))["Date"] == "Wed, 01 May 2024 12:30:15 +0000"
    assert parse(make(date=paris))["Date"] == "Wed, 01 May 2024 14:30:15 +0200"  # ...in its own offset
    with pytest.raises(ValueError, match="timezone-aware"):
        make(date=datetime(2024, 5, 1, 12, 0))


@pytest.mark.parametrize(
    "overrides",
    [
        {"subject": "Hello\r\nBcc: victim@example.com"},
        {"subject": "Hello\nthere"},
        {"to_addr": "zoe@example.com\r\nBcc: victim@example.com"},
        {"headers": [("X-Tag", "a\r\nBcc: victim@example.com")]},
        {"headers": [("X Bad", "v")]},
        {"headers": [("Subject", "second subject")]},
        {"headers": [("content-type", "text/plain")]},
        {"from_addr": "not an address"},
        {"to_addr": "zoë@example.com"},
        {"message_id": "no-at-sign"},
        {"message_id": "has space@x"},
    ],
)
def test_invalid_input_is_rejected(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        make(**overrides)


def test_domain_of() -> None:
    assert domain_of("zoe@Example.COM") == "example.com"
    assert domain_of("Zoë <zoe@Mail.Example.com>") == "mail.example.com"
    assert domain_of("jorg@bücher.example") == "xn--bcher-kva.example"
    with pytest.raises(ValueError, match="not an email address"):
        domain_of("nobody")


TEXTS = st.text(st.characters(exclude_categories=["Cs"]), max_size=400)


@settings(max_examples=60, deadline=None)
@given(text=TEXTS, html=TEXTS, subject=st.text(st.characters(exclude_categories=["Cs", "Cc"]), max_size=150))
def test_any_content_round_trips(text: str, html: str, subject: str) -> None:
    data = make(text=text, html=html, subject=subject)
    assert b"\n" not in data.replace(b"\r\n", b"")
    body = data.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76

    def normalised(value: str) -> str:
        return value.replace("\r\n", "\n").replace("\r", "\n")

    message = parse(data)
    assert bodies(message) == (normalised(text), normalised(html))
    assert message["Subject"] == subject.strip()  # a header value cannot start or end with whitespace
