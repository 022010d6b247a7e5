"""Fast, deterministic RFC 5322 / MIME assembly of a multipart/alternative (text + HTML) email, with
optional extra parts (a calendar invitation, attachments).

``email.message.EmailMessage`` is too slow for bulk sending (under 1,000 messages/s), so the bytes are
built by hand. Rules:

* CRLF line endings everywhere; header lines folded at 78 characters where possible; non-ASCII header
  text as RFC 2047 encoded-words (base64, UTF-8, never splitting a character).
* Both parts are UTF-8 quoted-printable (lines of at most 76 characters). A line starting with ``From ``
  is written as ``=46rom `` so mbox-style mangling (``>From``) cannot alter the message.
* The same inputs always give the same bytes: the boundary is derived from the Message-ID. It starts
  with ``=_``, which can never occur in quoted-printable text, so it cannot collide with the body.
* Header values containing CR, LF or NUL are rejected (header injection).
* Extra :class:`Part`\\ s (base64, lines of 76): an ``alternative`` part joins text and HTML inside
  the multipart/alternative (as an iMIP calendar invitation does, RFC 6047: ``text/calendar;
  method=REQUEST``), the others are attachments, and then the message is a multipart/mixed around the
  multipart/alternative -- the shape Google Calendar's and Outlook's invitations have, which calendar
  clients look for. Without parts the bytes are exactly those of a message without them. All parts
  together hold at most `MAX_PARTS_BYTES` (before encoding).
"""

from __future__ import annotations

import binascii
import hashlib
import re
from base64 import b64encode
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import format_datetime, formataddr, getaddresses, parseaddr
from functools import lru_cache

MAX_LINE = 78
_QP_LINE = 76
_HARD_LIMIT = 998
_WORD_OVERHEAD = len("=?utf-8?b??=")
_WORD_BYTES = (75 - _WORD_OVERHEAD) // 4 * 3  # an encoded-word is at most 75 characters
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")
_SIMPLE_ADDRESS = re.compile(
    r"\s*(?:(?P<bare>[\w.+-]+@[\w.-]+)|(?P<name>[\w -]*?)\s*<(?P<addr>[\w.+-]+@[\w.-]+)>)\s*"
)
_MSG_ID = re.compile(r"[!-;=?-~]+@[!-;=?-~]+")
_HEADER_NAME = re.compile(r"[!-9;-~]+")
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,./:=?-]{1,70}")
_RESERVED = frozenset(
    {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
    }
)
_ADDRESS_HEADERS = frozenset({"reply-to", "cc", "sender"})
MAX_PARTS_BYTES = 2 * 1024 * 1024
_CONTENT_TYPE = re.compile(r"[a-z0-9.+-]+/[a-z0-9.+-]+(?:; ?[a-z0-9-]+=(?:[A-Za-z0-9._+-]+|\"[ -!#-~]*\"))*")
_FILENAME = re.compile(r"[A-Za-z0-9._ -]{1,100}")
_PART_HEADERS = "Content-Type: text/{}; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"


@dataclass(frozen=True)
class Part:
    """An extra MIME part: ``content_type`` with its parameters (``text/calendar; method=REQUEST;
    charset=UTF-8``), the raw ``data``, a ``filename`` for an attachment, and ``alternative`` for a part
    that is another rendering of the message (beside text and HTML) rather than an attachment."""

    content_type: str
    data: bytes
    filename: str | None = None
    alternative: bool = False

    def headers(self) -> str:
        if not _CONTENT_TYPE.fullmatch(self.content_type):
            raise ValueError(f"invalid part Content-Type {self.content_type!r}")
        if self.filename is not None and not _FILENAME.fullmatch(self.filename):
            raise ValueError(f"invalid attachment file name {self.filename!r}")
        lines = [f"Content-Type: {self.content_type}"]
        if self.filename is not None:
            lines[0] += f';\r\n name="{self.filename}"'
            disposition = "inline" if self.alternative else "attachment"
            lines.append(f'Content-Disposition: {disposition};\r\n filename="{self.filename}"')
        lines.append("Content-Transfer-Encoding: base64")
        return "\r\n".join(lines) + "\r\n\r\n"

    def encoded(self) -> bytes:
        return self.headers().encode("ascii") + _base64_lines(self.data)


def build(
    *,
    from_addr: str,
    to_addr: str,
    subject: str,
    html: str,
    text: str,
    message_id: str,
    date: datetime,
    headers: Sequence[tuple[str, str]] = (),
    boundary: str | None = None,
    parts: Sequence[Part] = (),
) -> bytes:
    """The complete message: headers, then a text/plain and a text/html quoted-printable part (and the
    extra ``parts``, see the module's rules)."""
    message_id = _message_id(message_id)
    text_body, html_body = _quoted_printable(text), _quoted_printable(html)
    boundary = _boundary(boundary, message_id, text_body, html_body)
    if sum(len(part.data) for part in parts) > MAX_PARTS_BYTES:
        raise ValueError(f"the attachments are larger than {MAX_PARTS_BYTES:,} bytes")
    attachments = [part.encoded() for part in parts if not part.alternative]
    mixed = _mixed_boundary(message_id) if attachments else None
    top = (
        f'multipart/mixed;\r\n boundary="{mixed}"'
        if mixed
        else f'multipart/alternative;\r\n boundary="{boundary}"'
    )
    lines = [
        _address_header("From", [_address_words(from_addr)]),
        _address_header("To", [_address_words(to_addr)]),
        _unstructured("Subject", subject),
        f"Date: {_date(date)}",
        f"Message-ID: {message_id}",
        "MIME-Version: 1.0",
        f"Content-Type: {top}",
        *(_extra(name, value) for name, value in headers),
    ]
    head = "\r\n".join(lines).encode("ascii")
    delimiter = f"\r\n--{boundary}\r\n".encode("ascii")
    alternative = [
        delimiter,
        _PART_HEADERS.format("plain").encode("ascii"),
        text_body,
        delimiter,
        _PART_HEADERS.format("html").encode("ascii"),
        html_body,
    ]
    for part in parts:
        if part.alternative:
            alternative += [delimiter, part.encoded()]
    alternative.append(f"\r\n--{boundary}--\r\n".encode("ascii"))
    if mixed is None:
        return b"".join((head, b"\r\n\r\nThis is a multi-part message in MIME format.", *alternative))
    outer = f"\r\n--{mixed}\r\n".encode("ascii")
    inner = f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"\r\n'.encode("ascii")
    return b"".join(
        (
            head,
            b"\r\n\r\nThis is a multi-part message in MIME format.",
            outer,
            inner,
            *alternative,
            *(piece for attachment in attachments for piece in (outer, attachment)),
            f"\r\n--{mixed}--\r\n".encode("ascii"),
        )
    )


def _base64_lines(data: bytes) -> bytes:
    """Base64 in lines of 76 characters, CRLF between them (none after the last)."""
    encoded = b64encode(data)
    return b"\r\n".join(encoded[at : at + 76] for at in range(0, len(encoded), 76))


def _mixed_boundary(message_id: str) -> str:
    """The multipart/mixed boundary: unlike the alternative one (``=_lf_``), and like it made of
    characters base64 and quoted-printable bodies never hold at a line start (``=_``)."""
    return "=_lfm_" + hashlib.sha256(b"mixed:" + message_id.encode("ascii")).hexdigest()[:40]


def domain_of(address: str) -> str:
    """The lower-cased (IDNA/ASCII) domain of an address such as ``"Ann <ann@Example.com>"``."""
    _, addr = parseaddr(address)
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"not an email address: {address!r}")
    return _ascii_domain(domain).lower()


# ------------------------------------------------------------------------------------------------ headers


def _check_value(name: str, value: str) -> None:
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"{name} header must not contain CR, LF or NUL")


def _extra(name: str, value: str) -> str:
    if not _HEADER_NAME.fullmatch(name):
        raise ValueError(f"invalid header name {name!r}")
    if name.lower() in _RESERVED:
        raise ValueError(f"the {name} header is set by build() itself")
    _check_value(name, value)
    if name.lower() in _ADDRESS_HEADERS:
        return _address_header(name, [_mailbox_words(*pair) for pair in getaddresses([value])])
    return _unstructured(name, value)


def _address_header(name: str, mailboxes: Sequence[tuple[str, ...]]) -> str:
    words: list[str] = []
    for index, mailbox in enumerate(mailboxes):
        words.extend(mailbox)
        if index < len(mailboxes) - 1:
            words[-1] += ","
    return _fold(f"{name}:", words)


def _unstructured(name: str, value: str) -> str:
    """``Name: value`` folded at spaces, or as encoded-words when non-ASCII (or not foldable to 998).

    Leading and trailing whitespace is dropped: parsers do not preserve it consistently.
    """
    _check_value(name, value)
    value = value.strip()
    if value.isascii() and "=?" not in value:
        words = value.split(" ")
        if all(len(word) + len(name) + 2 <= _HARD_LIMIT for word in words):
            return _fold(f"{name}:", words)
    return _fold(f"{name}:", _encoded_words(value, len(name) + 2))


def _fold(start: str, words: Sequence[str]) -> str:
    """Join ``words`` with spaces after ``start``, breaking lines (CRLF + space) to stay within 78."""
    lines: list[str] = []
    line = start
    for index, word in enumerate(words):
        if index and word and len(line) + 1 + len(word) > MAX_LINE and line.strip():
            lines.append(line)
            line = ""
        line = f"{line} {word}"
    lines.append(line)
    return "\r\n".join(lines)


def _encoded_words(value: str, used: int) -> list[str]:
    """RFC 2047 B encoded-words, each at most 75 chars, the first fitting after ``used`` characters."""
    data = value.encode("utf-8")
    limit = min(max(((MAX_LINE - 1 - used - _WORD_OVERHEAD) // 4) * 3, 12), _WORD_BYTES)
    words: list[str] = []
    start = 0
    while True:
        end = start + limit
        if end >= len(data):
            words.append(f"=?utf-8?b?{b64encode(data[start:]).decode('ascii')}?=")
            return words
        while data[end] & 0xC0 == 0x80:  # never split a UTF-8 sequence: back off to a character start
            end -= 1
        words.append(f"=?utf-8?b?{b64encode(data[start:end]).decode('ascii')}?=")
        start, limit = end, _WORD_BYTES


@lru_cache(maxsize=4096)
def _address_words(address: str) -> tuple[str, ...]:
    """One address (``Name <local@domain>`` or bare) as header words; see `_mailbox_words`."""
    _check_value("address", address)
    simple = _SIMPLE_ADDRESS.fullmatch(address)  # parseaddr is slow; most addresses need none of it
    if simple:
        return _mailbox_words(simple["name"] or "", simple["bare"] or simple["addr"])
    return _mailbox_words(*parseaddr(address))


def _mailbox_words(name: str, addr: str) -> tuple[str, ...]:
    """The display name quoted or encoded as needed and the IDNA-encoded address, as header words."""
    local, at, domain = addr.rpartition("@")
    if not at or not local or not domain:
        raise ValueError(f"not an email address: {addr!r}")
    if not local.isascii():
        raise ValueError(f"non-ASCII local part needs SMTPUTF8: {addr!r}")
    addr = f"{local}@{_ascii_domain(domain)}"
    if not name:
        return (addr,)
    if name.isascii() and "=?" not in name:
        return (formataddr((name, addr)),)
    return (*_phrase_words(" ".join(name.split())), f"<{addr}>")


def _phrase_words(name: str) -> list[str]:
    """A non-ASCII display name as words: plain ASCII atoms kept, runs of other words encoded.

    Keeping the ASCII words plain (as the stdlib does) means adjacent encoded-words only occur for runs
    longer than one encoded-word, which the stdlib's own address parser decodes with a stray space.
    """
    words: list[str] = []
    run: list[str] = []
    for token in name.split(" "):
        if _ATOM.fullmatch(token) and "=?" not in token:
            if run:
                words.extend(_encoded_words(" ".join(run), len("Reply-To: ")))
                run.clear()
            words.append(token)
        else:
            run.append(token)
    if run:
        words.extend(_encoded_words(" ".join(run), len("Reply-To: ")))
    return words


def _ascii_domain(domain: str) -> str:
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError as err:
        raise ValueError(f"invalid domain {domain!r}") from err


def _date(date: datetime) -> str:
    if date.tzinfo is None or date.utcoffset() is None:
        raise ValueError("date must be timezone-aware")
    return _format_date(date.replace(microsecond=0), date.utcoffset())  # same second → same string


@lru_cache(maxsize=64)
def _format_date(date: datetime, offset: timedelta | None) -> str:
    # ``offset`` is part of the cache key: aware datetimes of the same instant compare (and hash) equal
    return format_datetime(date)


def _message_id(message_id: str) -> str:
    bare = message_id.strip().removeprefix("<").removesuffix(">")
    if not _MSG_ID.fullmatch(bare):
        raise ValueError(f"invalid Message-ID {message_id!r}")
    return f"<{bare}>"


def _boundary(boundary: str | None, message_id: str, *bodies: bytes) -> str:
    if boundary is None:
        return "=_lf_" + hashlib.sha256(message_id.encode("ascii")).hexdigest()[:40]
    if not _BOUNDARY.fullmatch(boundary):
        raise ValueError(f"invalid MIME boundary {boundary!r}")
    marker = f"--{boundary}".encode("ascii")
    if any(marker in body for body in bodies):
        raise ValueError("MIME boundary occurs in the body")
    return boundary


# ---------------------------------------------------------------------------------------- quoted-printable


def _quoted_printable(text: str) -> bytes:
    """UTF-8 quoted-printable with CRLF line breaks (any input line ending is normalised to CRLF).

    The bytes are exactly those of ``binascii.b2a_qp(data, istext=True)`` with CRLF soft breaks (and
    ``From `` escaped), which encodes byte by byte, slowly for a bulk send: here the escaping is done on
    the whole text at once, and only lines longer than a quoted-printable line are broken in Python (the
    long lines every message of a send repeats, from a cache).
    """
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    data = text.encode("utf-8")
    others = data.translate(None, _QP_PLAIN)
    if others and others.translate(None, _QP_8BIT_BYTES):  # control characters: b2a_qp, line by line
        lines = data.split(b"\n")
        return b"\r\n".join(_qp_b2a(line, final=index == len(lines) - 1) for index, line in enumerate(lines))
    escaped = data.replace(b"=", b"=3D")
    if others:
        escaped = _QP_8BIT.sub(_qp_hex, escaped)
    if escaped.endswith(_QP_BLANKS):  # b2a_qp encodes a blank at the very end as a character of its own
        escaped = escaped[:-1] + (b"=20" if escaped[-1] == 32 else b"=09")
    lines = escaped.split(b"\n")
    final = _qp_finish(lines.pop(), final=True)
    if b" \n" in escaped or b"\t\n" in escaped or b"From " in escaped or b"." in lines:
        lines = [_qp_finish(line, final=False) for line in lines]
    else:
        known = _QP_LONG.get
        lines = [line if len(line) < _QP_LINE else known(line) or _qp_long(line) for line in lines]
    lines.append(final)
    return b"\r\n".join(lines)


_QP_LONG: dict[bytes, bytes] = {}
_QP_CACHE_SIZE = 4096
_QP_PLAIN = bytes([9, 10, *range(32, 127)])
_QP_8BIT = re.compile(rb"[\x80-\xff]+")
_QP_8BIT_BYTES = bytes(range(128, 256))
_QP_BLANKS = (b" ", b"\t")


def _qp_hex(match: re.Match[bytes]) -> bytes:
    return b"".join(b"=%02X" % byte for byte in match[0])


def _qp_long(line: bytes) -> bytes:
    encoded = _qp_line(line, final=False)
    if len(_QP_LONG) >= _QP_CACHE_SIZE:
        _QP_LONG.clear()
    _QP_LONG[line] = encoded
    return encoded


def _qp_finish(line: bytes, *, final: bool) -> bytes:
    """An escaped line (a blank ending the data already encoded) with its soft breaks and protections."""
    if len(line) >= _QP_LINE or line == b"." or (not final and line.endswith(_QP_BLANKS)):
        line = _qp_line(line, final=final)
    if b"From " in line:
        line = b"\r\n".join(_escape_from(segment) for segment in line.split(b"\r\n"))
    return line


def _qp_b2a(line: bytes, *, final: bool) -> bytes:
    encoded = binascii.b2a_qp(line if final else line + b"\r\n", istext=True)
    encoded = encoded.replace(b"\n", b"\r\n") if final else encoded[:-2]
    if b"From " in encoded:
        encoded = b"\r\n".join(_escape_from(segment) for segment in encoded.split(b"\r\n"))
    return encoded


def _qp_line(line: bytes, *, final: bool) -> bytes:
    """One escaped line with b2a_qp's soft breaks and end-of-line protection.

    b2a_qp breaks before a character whose column (counted from 0 after the last break) is 75 or more,
    or before an ``=XX`` starting at column 73 or more, except before the very last character of the data.
    """
    if line == b".":
        return b"=2E"  # a lone dot (line start, then a line end or the end of the data)
    segments: list[bytes] = []
    start, size = 0, len(line)
    while size - start > _QP_LINE - 1:
        if line[start + 73] == 61:  # "="
            cut = start + 73
        elif line[start + 74] == 61:
            cut = start + 74
        else:
            cut = start + 75  # a character boundary: an "=XX" before it started at column 72 or less
            if final and cut == size - 1 and line[cut] != 61:
                break
        segments.append(line[start:cut])
        start = cut
    segments.append(line[start:])
    if not final and segments[-1].endswith((b" ", b"\t")):
        tail = segments[-1]
        segments[-1] = tail[:-1] + (b"=20" if tail[-1] == 32 else b"=09")
    return b"=\r\n".join(segments)


def _escape_from(line: bytes) -> bytes:
    if not line.startswith(b"From "):
        return line
    line = b"=46" + line[1:]
    if len(line) <= _QP_LINE:
        return line
    cut = _QP_LINE - 1
    while b"=" in line[cut - 2 : cut]:  # never split an =XX escape
        cut -= 1
    return line[:cut] + b"=\r\n" + line[cut:]
