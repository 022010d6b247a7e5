"""Email transports against a real SMTP server (tests.peers.smtp.SmtpPeer), a directory, and memory."""

from __future__ import annotations

import email.policy
import socket
import threading
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Literal

import pytest

from leadflow.messaging.delivery.transport.base import EmailTransport, Outcome, Outgoing
from leadflow.messaging.delivery.transport.capture import CaptureTransport
from leadflow.messaging.delivery.transport.file import FileTransport, safe_name
from leadflow.messaging.delivery.transport.smtp import SmtpSettings, SmtpTransport, parse_smtp_url
from tests.peers.smtp import SmtpPeer
from tests.support.server import free_port

SENDER = "news@leadflow.test"
AUTH = ("mailer", "s3cret p@ss:/word")


def outgoing(number: int, recipient: str | None = None) -> Outgoing:
    recipient = recipient or f"person{number}@example.test"
    message = EmailMessage(policy=email.policy.SMTP)
    message["From"] = SENDER
    message["To"] = recipient
    message["Subject"] = f"Hello number {number}"
    message["Message-ID"] = f"<m{number}@leadflow.test>"
    # a line starting with a dot (dot-stuffing) and non-ASCII text (8bit) must survive the trip
    message.set_content(f"Hi {number},\n.this line starts with a dot\nCafé crème ✓\n", cte="8bit")
    data = message.as_bytes()
    assert data.endswith(b"\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"")
    return Outgoing(SENDER, recipient, data, f"<m{number}@leadflow.test>")


def statuses(outcomes: list[Outcome]) -> list[str]:
    return [outcome.status for outcome in outcomes]


@pytest.mark.parametrize("pipelining", [False, True])
def test_plain_pool_of_three_delivers_every_message_byte_for_byte_and_reuses_connections(
    pipelining: bool,
) -> None:
    batch = [outgoing(number) for number in range(10)]
    peer = SmtpPeer(pipelining=pipelining)
    with peer, SmtpTransport.from_url(peer.url, pool_size=3) as transport:
        outcomes = transport.send_many(batch)
        assert statuses(outcomes) == ["sent"] * 10
        assert all(outcome.code == 250 and "queued as" in outcome.response for outcome in outcomes)
        received = peer.wait_for(10)
        assert {item.data for item in received} == {message.data for message in batch}
        by_data = {item.data: item for item in received}
        for message in batch:
            assert by_data[message.data].sender == SENDER
            assert by_data[message.data].recipients == [message.recipient]
        assert peer.parsed()[0]["Subject"].startswith("Hello number")

        second = [outgoing(number) for number in range(10, 16)]
        assert statuses(transport.send_many(second)) == ["sent"] * 6
        assert len(peer.wait_for(16)) == 16
        assert peer.connections <= 3  # the second batch reused the pooled connections
        assert peer.pipelined == (16 if pipelining else 0)  # RFC 2920 only when offered


def test_starttls_with_auth_delivers() -> None:
    with SmtpPeer(auth=AUTH, tls="starttls") as peer:
        assert "starttls=true" in peer.url
        with SmtpTransport.from_url(peer.url, pool_size=2) as transport:
            outcomes = transport.send_many([outgoing(1), outgoing(2), outgoing(3)])
        assert statuses(outcomes) == ["sent"] * 3
        assert sorted(item.recipients[0] for item in peer.wait_for(3)) == [
            "person1@example.test",
            "person2@example.test",
            "person3@example.test",
        ]


def test_starttls_server_refuses_a_client_that_does_not_upgrade() -> None:
    with SmtpPeer(auth=AUTH, tls="starttls") as peer:
        url = peer.url.replace("starttls=true&", "")
        with SmtpTransport.from_url(url) as transport:
            outcomes = transport.send_many([outgoing(1)])
        assert outcomes[0].status == "deferred"
        assert "login failed" in outcomes[0].response
        assert peer.messages == []


def test_implicit_tls_with_auth_delivers() -> None:
    with SmtpPeer(auth=AUTH, tls="implicit") as peer:
        assert peer.url.startswith("smtps://")
        with SmtpTransport.from_url(peer.url, pool_size=2) as transport:
            outcomes = transport.send_many([outgoing(1), outgoing(2)])
        assert statuses(outcomes) == ["sent", "sent"]
        assert {item.data for item in peer.wait_for(2)} == {outgoing(1).data, outgoing(2).data}


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
def test_certificates_are_verified_unless_told_otherwise(tls: Literal["starttls", "implicit"]) -> None:
    with SmtpPeer(tls=tls) as peer:
        with SmtpTransport.from_url(peer.url.replace("verify=false", "verify=true")) as transport:
            outcomes = transport.send_many([outgoing(1), outgoing(2)])
        assert statuses(outcomes) == ["deferred", "deferred"]
        assert "CERTIFICATE_VERIFY_FAILED" in outcomes[0].response
        assert peer.messages == []


def test_wrong_password_defers_every_message_with_the_servers_reason() -> None:
    """A wrong password is our configuration, not the recipients' fault: ``deferred``, never ``bounced``
    (a bounce would mark good addresses as bad); the messages go once the password is fixed."""
    with SmtpPeer(auth=AUTH, tls="starttls") as peer:
        url = peer.url.replace("s3cret", "wrong")
        with SmtpTransport.from_url(url, pool_size=2) as transport:
            outcomes = transport.send_many([outgoing(number) for number in range(5)])
        assert statuses(outcomes) == ["deferred"] * 5
        assert {outcome.code for outcome in outcomes} == {535}
        assert all("login failed: 535" in outcome.response for outcome in outcomes)
        assert "credentials invalid" in outcomes[0].response
        assert peer.messages == []


@pytest.mark.parametrize("pipelining", [False, True])
def test_missing_login_means_the_sender_is_refused_which_defers(pipelining: bool) -> None:
    peer = SmtpPeer(auth=AUTH, pipelining=pipelining)
    with peer, SmtpTransport.from_url(f"smtp://127.0.0.1:{peer.port}") as transport:
        outcomes = transport.send_many([outgoing(1), outgoing(2)])
        assert peer.messages == []
    assert statuses(outcomes) == ["deferred", "deferred"]
    assert outcomes[0].status == "deferred"
    assert outcomes[0].code == 530
    assert outcomes[0].response.startswith(f"sender {SENDER} refused: 530")


@pytest.mark.parametrize("pipelining", [False, True])
def test_rejected_recipients_bounce_or_defer_in_place_and_the_rest_is_delivered(pipelining: bool) -> None:
    reject = {"gone@example.test": (550, "5.1.1 No such user"), "busy@example.test": (450, "4.2.1 Try later")}
    batch = [outgoing(number) for number in range(6)]
    batch[1] = outgoing(1, "gone@example.test")
    batch[4] = outgoing(4, "busy@example.test")
    peer = SmtpPeer(reject=reject, pipelining=pipelining)
    with peer, SmtpTransport.from_url(peer.url, pool_size=2) as transport:
        outcomes = transport.send_many(batch)
        assert statuses(outcomes) == ["sent", "bounced", "sent", "sent", "deferred", "sent"]
        assert peer.pipelined == (6 if pipelining else 0)
        assert (outcomes[1].code, outcomes[1].response) == (550, "550 5.1.1 No such user")
        assert (outcomes[4].code, outcomes[4].response) == (450, "450 4.2.1 Try later")
        received = peer.wait_for(4)
        assert sorted(item.recipients[0] for item in received) == [
            "person0@example.test",
            "person2@example.test",
            "person3@example.test",
            "person5@example.test",
        ]
        assert peer.connections <= 2  # a refusal does not cost the connection


@pytest.mark.parametrize("pipelining", [False, True])
def test_a_421_closing_reply_defers_and_gives_up_the_rest_of_that_connections_share(
    pipelining: bool,
) -> None:
    reject = {"closing@example.test": (421, "4.3.2 Service shutting down")}
    batch = [outgoing(0), outgoing(1, "closing@example.test"), outgoing(2)]
    peer = SmtpPeer(reject=reject, pipelining=pipelining)
    with peer, SmtpTransport.from_url(peer.url, pool_size=1) as transport:
        outcomes = transport.send_many(batch)
        assert statuses(outcomes) == ["sent", "deferred", "deferred"]
        assert outcomes[1].code == 421
        assert len(peer.messages) == 1


def test_a_stopped_server_defers_without_raising() -> None:
    peer = SmtpPeer().start()
    with SmtpTransport.from_url(peer.url, pool_size=2) as transport:
        assert statuses(transport.send_many([outgoing(1), outgoing(2)])) == ["sent", "sent"]
        peer.stop()
        outcomes = transport.send_many([outgoing(number) for number in range(3, 8)])
    assert statuses(outcomes) == ["deferred"] * 5
    assert all(outcome.code is None for outcome in outcomes)
    assert all(f"cannot connect to smtp://127.0.0.1:{peer.port}" in o.response for o in outcomes)


def test_a_server_that_never_ran_defers_every_message() -> None:
    with SmtpTransport.from_url(f"smtp://127.0.0.1:{free_port()}", timeout=2) as transport:
        outcomes = transport.send_many([outgoing(1), outgoing(2), outgoing(3)])
    assert statuses(outcomes) == ["deferred"] * 3
    assert "cannot connect" in outcomes[2].response


def test_a_restarted_server_is_reconnected_to_transparently() -> None:
    first = SmtpPeer().start()
    with SmtpTransport.from_url(first.url, pool_size=2) as transport:
        assert statuses(transport.send_many([outgoing(1), outgoing(2)])) == ["sent", "sent"]
        first.stop()  # the pooled connections are now dead
        with SmtpPeer(port=first.port) as second:
            outcomes = transport.send_many([outgoing(3), outgoing(4)])
            assert statuses(outcomes) == ["sent", "sent"]
            assert {item.data for item in second.wait_for(2)} == {outgoing(3).data, outgoing(4).data}


def test_concurrent_batches_share_the_pool_without_exceeding_it() -> None:
    results: dict[int, list[Outcome]] = {}

    def send(caller: int) -> None:
        results[caller] = transport.send_many([outgoing(caller * 100 + number) for number in range(10)])

    with SmtpPeer() as peer, SmtpTransport.from_url(peer.url, pool_size=2) as transport:
        threads = [threading.Thread(target=send, args=(caller,)) for caller in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert {caller: statuses(outcomes) for caller, outcomes in results.items()} == {
            caller: ["sent"] * 10 for caller in range(3)
        }
        assert len(peer.wait_for(30)) == 30
        assert peer.connections <= 2


def test_non_ascii_addresses_go_with_smtputf8() -> None:
    message = outgoing(1, "josé@exämple.test")
    with SmtpPeer() as peer, SmtpTransport.from_url(peer.url) as transport:
        assert statuses(transport.send_many([message])) == ["sent"]
        assert peer.wait_for(1)[0].recipients == ["josé@exämple.test"]


def test_close_is_final() -> None:
    with SmtpPeer() as peer:
        transport = SmtpTransport.from_url(peer.url)
        assert statuses(transport.send_many([outgoing(1)])) == ["sent"]
        transport.close()
        transport.close()
        with pytest.raises(RuntimeError, match="closed"):
            transport.send_many([outgoing(2)])
        assert peer.messages[0].data == outgoing(1).data


def test_an_empty_batch_sends_nothing() -> None:
    with SmtpPeer() as peer, SmtpTransport.from_url(peer.url) as transport:
        assert transport.send_many([]) == []
        assert peer.connections == 0


# -- URLs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com", SmtpSettings("mail.example.com", 25)),
        ("SMTP://mail.example.com:2525/", SmtpSettings("mail.example.com", 2525)),
        (
            "smtp://user:pass@mail.example.com:587?starttls=true",
            SmtpSettings("mail.example.com", 587, starttls=True, username="user", password="pass"),
        ),
        (
            "smtps://user:pass@mail.example.com",
            SmtpSettings("mail.example.com", 465, implicit_tls=True, username="user", password="pass"),
        ),
        (
            "smtps://me%40corp.example:p%40ss%3Aw%2Fd%20x@relay.example.com:2465?verify=false",
            SmtpSettings(
                "relay.example.com",
                2465,
                implicit_tls=True,
                verify=False,
                username="me@corp.example",
                password="p@ss:w/d x",
            ),
        ),
        ("smtp://[::1]:25?starttls=1&verify=no", SmtpSettings("::1", 25, starttls=True, verify=False)),
    ],
)
def test_urls_are_parsed(url: str, expected: SmtpSettings) -> None:
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        ("http://mail.example.com", "must start with smtp:// or smtps://"),
        ("mail.example.com:25", "must start with smtp:// or smtps://"),
        ("smtp://", "has no host"),
        ("smtp://:hunter2@mail.example.com", "needs both a user and a password"),
        ("smtp://user@mail.example.com", "needs both a user and a password"),
        ("smtp://mail.example.com:99999", "invalid port"),
        ("smtp://mail.example.com:twenty", "invalid port"),
        ("smtp://mail.example.com/inbox", "must not have a path"),
        ("smtp://mail.example.com?tls=true", "unknown option 'tls'"),
        ("smtp://mail.example.com?starttls=maybe", "starttls must be true or false"),
        ("smtps://u:hunter2@mail.example.com?starttls=true", "already TLS"),
    ],
)
def test_bad_urls_are_refused_clearly_without_showing_the_password(url: str, complaint: str) -> None:
    with pytest.raises(ValueError, match="SMTP URL") as info:
        parse_smtp_url(url)
    assert complaint in str(info.value)
    assert "hunter2" not in str(info.value)


def test_the_description_never_shows_the_password() -> None:
    transport = SmtpTransport.from_url(
        "smtp://mailer:hunter2@relay.example.com:587?starttls=true", pool_size=3
    )
    try:
        assert transport.description == "SMTP smtp://mailer@relay.example.com:587 (STARTTLS, pool 3)"
        assert "hunter2" not in repr(transport.settings)
    finally:
        transport.close()


# -- file and memory ----------------------------------------------------------------------------


def test_file_transport_writes_parseable_eml_files(tmp_path: Path) -> None:
    directory = tmp_path / "outbox"
    transport = FileTransport(directory)
    batch = [outgoing(1), outgoing(2)]
    outcomes = transport.send_many(batch)
    files = sorted(directory.iterdir())
    assert [path.name for path in files] == ["m1@leadflow.test.eml", "m2@leadflow.test.eml"]
    assert outcomes == [Outcome("sent", None, f"written to {path}") for path in files]
    assert files[0].read_bytes() == batch[0].data
    parsed = BytesParser(policy=email.policy.default).parsebytes(files[1].read_bytes())
    assert parsed["Subject"] == "Hello number 2"
    assert "Café crème" in parsed.get_content()

    transport.send_many(
        [Outgoing(SENDER, "x@example.test", b"Subject: again\r\n\r\nretry\r\n", "<m1@leadflow.test>")]
    )
    assert len(list(directory.iterdir())) == 2  # the same id overwrites, no temporary file is left
    assert files[0].read_bytes().startswith(b"Subject: again")


def test_unsafe_message_ids_become_distinct_safe_file_names() -> None:
    assert safe_name("<abc.123@host.example>") == "abc.123@host.example"
    first, second = safe_name("<../../etc/passwd>"), safe_name("<..//etc/passwd>")
    assert "/" not in first
    assert not first.startswith(".")
    assert first != second
    assert safe_name("<>")  # never an empty name


def test_capture_transport_keeps_everything_from_many_threads() -> None:
    transport = CaptureTransport()

    def send(start: int) -> None:
        for number in range(start, start + 50):
            message = Outgoing(
                SENDER, "x@example.test", b"Subject: x\r\n\r\nx\r\n", f"<m{number}@leadflow.test>"
            )
            assert transport.send_many([message]) == [Outcome("sent", None, "captured")]

    threads = [threading.Thread(target=send, args=(offset * 50,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(message.message_id for message in transport.snapshot()) == sorted(
        f"<m{number}@leadflow.test>" for number in range(200)
    )
    assert len(transport.sent) == 200


def test_every_transport_speaks_the_protocol(tmp_path: Path) -> None:
    transports: list[EmailTransport] = [
        CaptureTransport(),
        FileTransport(tmp_path),
        SmtpTransport.from_url("smtp://127.0.0.1:25"),
    ]
    for transport in transports:
        assert transport.description
        assert transport.send_many([]) == []
        transport.close()


def test_a_pipelining_server_that_accepts_data_after_refusing_the_recipient_gets_no_message() -> None:
    """RFC 2920 §3.1: if DATA is answered 354 though no recipient was accepted, the client must not send
    the message; it ends the data phase with a lone dot. A scripted server over a real socket."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    heard: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"220 scripted ESMTP\r\n")
            replies = {
                b"EHLO": b"250-scripted\r\n250 PIPELINING\r\n",
                b"MAIL": b"250 OK\r\n",
                b"RCPT": b"550 5.1.1 No such user\r\n",
                b"DATA": b"354 go ahead (wrongly)\r\n",
                b".": b"554 5.5.1 No valid recipients\r\n",
                b"RSET": b"250 OK\r\n",
                b"QUIT": b"221 Bye\r\n",
            }
            for line in lines:
                heard.append(line)
                command = line.split(b" ", 1)[0].strip().split(b":")[0].upper()
                conn.sendall(replies.get(command, b"500 what?\r\n"))
                if command == b"QUIT":
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with SmtpTransport.from_url(f"smtp://127.0.0.1:{port}", pool_size=1) as transport:
        outcomes = transport.send_many([outgoing(1, "gone@example.test")])
    thread.join(5)
    listener.close()
    assert statuses(outcomes) == ["bounced"], (outcomes, heard)
    assert outcomes[0].response == "550 5.1.1 No such user"
    commands = [line.split(b" ", 1)[0].strip().upper() for line in heard]
    assert commands[1:] == [b"MAIL", b"RCPT", b"DATA", b".", b"RSET", b"QUIT"]
    assert not any(b"Hello number" in line for line in heard)  # the message itself never went


def test_a_421_before_the_server_hangs_up_mid_pipeline_is_the_reason_given(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server shutting down answers the pipelined MAIL with 421 and closes before reading RCPT and DATA:
    the 421 text (not "connection unexpectedly closed") is what the log and the retry report, and the
    message goes on a fresh connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    heard: list[list[bytes]] = []

    def session(conn: socket.socket, closing: bool) -> None:
        commands: list[bytes] = []
        heard.append(commands)
        with conn, conn.makefile("rb") as lines:
            conn.sendall(b"220 scripted ESMTP\r\n")
            for line in lines:
                command = line.split(b" ", 1)[0].strip().split(b":")[0].upper()
                commands.append(command)
                if command == b"MAIL" and closing:
                    conn.sendall(b"421 4.3.2 Service shutting down\r\n")
                    return  # hangs up with RCPT and DATA unread
                if command == b"DATA":
                    conn.sendall(b"354 go ahead\r\n")
                    for body in lines:
                        if body == b".\r\n":
                            break
                    conn.sendall(b"250 2.0.0 Ok: queued\r\n")
                    continue
                reply = b"250-scripted\r\n250 PIPELINING\r\n" if command == b"EHLO" else b"250 OK\r\n"
                conn.sendall(b"221 Bye\r\n" if command == b"QUIT" else reply)
                if command == b"QUIT":
                    return

    def serve() -> None:
        for closing in (True, False):
            conn, _ = listener.accept()
            session(conn, closing)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    with (
        caplog.at_level("INFO", logger="leadflow.messaging.delivery.transport.smtp"),
        SmtpTransport.from_url(f"smtp://127.0.0.1:{port}", pool_size=1) as transport,
    ):
        outcomes = transport.send_many([outgoing(1)])
    thread.join(5)
    listener.close()
    assert statuses(outcomes) == ["sent"], (outcomes, heard)
    assert heard[0] == [b"EHLO", b"MAIL"]
    assert heard[1][:4] == [b"EHLO", b"MAIL", b"RCPT", b"DATA"]
    assert "SMTP connection lost (421 4.3.2 Service shutting down)" in caplog.text
