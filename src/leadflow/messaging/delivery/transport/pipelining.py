"""SMTP command pipelining (RFC 2920): one message in two round trips instead of four.

``MAIL FROM``, ``RCPT TO`` and ``DATA`` go out in one write and their three replies are read in order;
the message content follows only when ``DATA`` was answered ``354``. Used only when the server lists
``PIPELINING`` in its EHLO reply (postfix, Exim and the big providers do). The replies are judged as
:meth:`smtplib.SMTP.sendmail` judges them and the same exceptions are raised, so a caller cannot tell
the two apart except by speed:

* MAIL refused: :class:`smtplib.SMTPSenderRefused` (after the RCPT and DATA replies are read and the
  transaction is reset);
* RCPT refused: :class:`smtplib.SMTPRecipientsRefused`;
* DATA or the end of data refused: :class:`smtplib.SMTPDataError`;
* a lost connection: :class:`smtplib.SMTPServerDisconnected` or :class:`OSError` — unless the server
  hung up right after refusing a command (a ``421``), which is then raised as that refusal.

If a server answers ``354`` although it refused the sender or recipient (it should not), an empty
message is never sent: the data phase is ended with a lone ``.``, whose reply is read, and the
transaction reset.
"""

from __future__ import annotations

import re
import smtplib
from contextlib import suppress
from typing import NoReturn, Protocol

_LEADING_DOT = re.compile(rb"(?m)^\.")
_CRLF = b"\r\n"
_START_DATA = 354
Reply = tuple[int, bytes]


class _Connection(Protocol):
    last_reply: tuple[int, bytes]

    def send(self, s: bytes | str) -> None: ...

    def getreply(self) -> tuple[int, bytes]: ...

    def rset(self) -> tuple[int, bytes]: ...


def pipelined(client: _Connection, sender: str, recipient: str, data: bytes) -> None:
    """One pipelined transaction for ASCII addresses; ``client.last_reply`` holds the final reply."""
    mail_from, rcpt_to = smtplib.quoteaddr(sender), smtplib.quoteaddr(recipient)  # as sendmail() does
    client.send(f"MAIL FROM:{mail_from}\r\nRCPT TO:{rcpt_to}\r\nDATA\r\n".encode("ascii"))
    mail = client.getreply()
    rcpt = _following(client, mail)
    start = _following(client, rcpt)
    if mail[0] != 250 or not _ok(rcpt, (250, 251)) or not _ok(start, (_START_DATA,)):
        _abandon(client, sender, recipient, mail, rcpt, start)
    client.send(content(data))
    client.last_reply = reply = client.getreply()
    if reply[0] != 250:
        raise smtplib.SMTPDataError(*reply)


def _ok(reply: Reply | None, codes: tuple[int, ...]) -> bool:
    return reply is not None and reply[0] in codes


def _abandon(
    client: _Connection, sender: str, recipient: str, mail: Reply, rcpt: Reply | None, start: Reply | None
) -> NoReturn:
    """End a refused transaction (never sending the message) and raise what ``sendmail()`` raises."""
    if _ok(start, (_START_DATA,)):  # DATA accepted after a refusal: end the data phase empty
        client.send(b"." + _CRLF)
        client.getreply()
    if start is not None:  # the server is still there
        _reset(client)
    if mail[0] != 250:
        raise smtplib.SMTPSenderRefused(mail[0], mail[1], sender)
    if rcpt is not None and rcpt[0] not in (250, 251):
        raise smtplib.SMTPRecipientsRefused({recipient: rcpt})
    if start is not None:
        raise smtplib.SMTPDataError(*start)
    raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


def _following(client: _Connection, previous: Reply | None) -> Reply | None:
    """The next reply, or ``None`` when the server hung up right after refusing (typically ``421``
    before closing): the refusal already read then explains the failure, as ``sendmail()`` reports it."""
    if previous is None:
        return None
    try:
        return client.getreply()
    except smtplib.SMTPServerDisconnected:
        if previous[0] < 400:
            raise
        return None


def content(data: bytes) -> bytes:
    """The message as sent after ``354``: leading dots doubled, ended by ``CRLF . CRLF``."""
    quoted = _LEADING_DOT.sub(b"..", data)
    if not quoted.endswith(_CRLF):
        quoted += _CRLF
    return quoted + b"." + _CRLF


def _reset(client: _Connection) -> None:
    with suppress(smtplib.SMTPServerDisconnected):
        client.rset()
