from __future__ import annotations

import base64
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import dkim
import dkim.crypto
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.kernel.clock import VirtualClock
from leadflow.messaging.build import dkim_header
from leadflow.messaging.build.dkim import (
    CANONICALIZATIONS,
    DEFAULT_HEADERS,
    DkimSigner,
    dns_record,
    load_private_key,
)
from leadflow.messaging.build.mime import build

SELECTOR = "lf2024"
DOMAIN = "acme.example"


@cache
def rsa_key() -> rsa.RSAPrivateKey:
    """One 2048-bit key for the whole test session (generation is slow)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(private_format: serialization.PrivateFormat = serialization.PrivateFormat.PKCS8) -> bytes:
    return rsa_key().private_bytes(serialization.Encoding.PEM, private_format, serialization.NoEncryption())


def dns_for(record: str) -> Callable[..., bytes | None]:
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record.encode("ascii") if name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode() else None

    return lookup


def message(*, headers: list[tuple[str, str]] | None = None, html: str = "<p>Hi Zoë</p>") -> bytes:
    return build(
        from_addr="Acme <news@acme.example>",
        to_addr="Zoë <zoe@example.com>",
        subject="Grüße — spring sale",
        html=html,
        text="Hi Zoë\nFrom the team\n.\n",
        message_id="01HX@mail.acme.example",
        date=datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        headers=headers or [],
    )


@cache
def signer() -> DkimSigner:
    return DkimSigner(selector=SELECTOR, domain=DOMAIN, private_key_pem=pem())


@cache
def published_record() -> str:
    return dns_record(pem())


def verify(data: bytes) -> bool:
    return bool(dkim.verify(data, dnsfunc=dns_for(published_record())))


def test_signed_message_verifies() -> None:
    original = message(headers=[("List-Unsubscribe", "<https://acme.example/u/1>")])
    signed = signer().sign(original)
    assert signed.startswith(b"DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/simple; d=acme.example;")
    assert signed.endswith(original)
    assert verify(signed)


def test_signature_lists_the_default_headers_even_when_absent() -> None:
    signed = signer().sign(message())
    header = signed.split(b"\r\n\r\n", 1)[0].split(b"\r\nFrom:", 1)[0]
    signed_names = header.replace(b"\r\n", b"").split(b"h=", 1)[1].split(b";", 1)[0]
    assert [name.strip() for name in signed_names.split(b":")] == [h.lower() for h in DEFAULT_HEADERS]
    assert b"Reply-To" not in signed
    assert verify(signed)


def test_tampering_breaks_verification() -> None:
    signed = signer().sign(message())
    assert verify(signed)
    assert not verify(signed.replace(b"Hi Zo=C3=AB", b"Hi Bob"))
    assert not verify(signed.replace(b"Subject: ", b"Subject: FWD "))
    # an absent but signed header cannot be added afterwards
    head, body = signed.split(b"\r\n\r\n", 1)
    assert not verify(head + b"\r\nList-Unsubscribe: <https://evil.example/>\r\n\r\n" + body)


def test_relaxed_canonicalisation_survives_header_refolding() -> None:
    signed = signer().sign(message())
    assert verify(signed.replace(b"Subject: ", b"Subject:    "))


SHAPES = {
    "built by leadflow": message(headers=[("List-Unsubscribe", "<https://acme.example/u/1>")]),
    "repeated and folded headers": b"From: a@acme.example\r\nTo: b@example.com\r\nSubject: one\r\n two\r\n"
    b"To: c@example.com\r\n\r\nbody\r\n\r\n\r\n",
    "empty body": b"From: a@acme.example\r\nSubject: x\r\n\r\n",
    "body without final CRLF": b"From: a@acme.example\r\n\r\nline\r\nlast",
    "bare LF (dkimpy normalises)": b"From: a@acme.example\nSubject: x\n\nbody\nmore\n",
    "mixed line endings": b"From: a@acme.example\r\nSubject: x\r\n\r\nbody\nmore\r\n",
    "leading empty line": b"\r\nFrom: a@acme.example\r\n\r\nbody\r\n",
    "no body separator": b"From: a@acme.example\r\nSubject: x\r\n",
    "mbox From_ line": b"From someone Mon Jan 1 00:00:00 2024\r\nFrom: a@acme.example\r\n\r\nhi\r\n",
    "bare CR in body": b"From: a@acme.example\r\n\r\nhi\rthere\r\n",
}


SIGNED_AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@cache
def ed25519_pem() -> bytes:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def key_pem(kind: str) -> bytes:
    return pem(serialization.PrivateFormat.TraditionalOpenSSL) if kind == "rsa" else ed25519_pem()


def assert_signed_as_dkimpy_signs(data: bytes, kind: str, canonicalization: str) -> None:
    """Our signature (``t=`` from the clock) is byte for byte ``dkim.sign``'s at the same second."""
    signer = DkimSigner(
        selector=SELECTOR,
        domain=DOMAIN,
        private_key_pem=key_pem(kind),
        canonicalization=canonicalization,
        clock=VirtualClock(SIGNED_AT),
    )
    algorithm = signer.algorithm
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(dkim.time, "time", SIGNED_AT.timestamp)
        try:
            reference = dkim.sign(
                data,
                SELECTOR.encode(),
                DOMAIN.encode(),
                signer._key,
                signature_algorithm=algorithm,
                canonicalize=tuple(canonicalization.encode("ascii").split(b"/")),
                include_headers=list(DEFAULT_HEADERS),
            )
        except dkim.DKIMException as refused:
            with pytest.raises(type(refused)):
                signer.sign(data)
            return
        ours = signer.sign(data)  # dkimpy signs what the fast path does not take, with its own t=
    assert ours == reference + data


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
@pytest.mark.parametrize("canonicalization", CANONICALIZATIONS)
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_signature_is_byte_identical_to_dkim_sign(shape: str, canonicalization: str, kind: str) -> None:
    assert_signed_as_dkimpy_signs(SHAPES[shape], kind, canonicalization)


_NAMES = st.sampled_from(["From", "from", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe", "X-Tag"])
_TEXT = st.text(alphabet=st.sampled_from(list("ab Z09.<>@;=:\t\x0b")), max_size=30).map(str.encode)
_VALUES = st.builds(
    lambda parts, fold: fold.join(parts),
    st.lists(_TEXT, min_size=1, max_size=3),
    st.sampled_from([b"\r\n ", b"\r\n\t"]),
)
_FIELDS = st.lists(st.tuples(_NAMES, st.sampled_from([b"", b" ", b"  ", b"\t"]), _VALUES), max_size=8)
_BODIES = st.lists(_TEXT, max_size=6).map(lambda lines: b"\r\n".join(lines))


@settings(max_examples=150, deadline=None)
@given(
    fields=_FIELDS,
    body=_BODIES,
    tail=st.sampled_from([b"", b"\r\n", b"\r\n\r\n"]),
    kind=st.sampled_from(["rsa", "ed25519"]),
    canonicalization=st.sampled_from(CANONICALIZATIONS),
)
def test_generated_messages_are_signed_as_dkimpy_signs(
    fields: list[tuple[str, bytes, bytes]], body: bytes, tail: bytes, kind: str, canonicalization: str
) -> None:
    header = b"".join(name.encode() + b":" + gap + value + b"\r\n" for name, gap, value in fields)
    assert_signed_as_dkimpy_signs(header + b"\r\n" + body + tail, kind, canonicalization)


def test_only_plain_crlf_messages_take_the_fast_path() -> None:
    assert dkim_header.split(SHAPES["built by leadflow"]) is not None
    others = ("bare LF (dkimpy normalises)", "mixed line endings", "leading empty line", "no body separator")
    for shape in others:
        assert dkim_header.split(SHAPES[shape]) is None, shape


def test_t_comes_from_the_clock() -> None:
    clock = VirtualClock(SIGNED_AT)
    signer = DkimSigner(selector=SELECTOR, domain=DOMAIN, private_key_pem=pem(), clock=clock)
    clock.advance(timedelta(days=3))
    signed = signer.sign(message())
    assert f"t={int(clock.now().timestamp())};".encode() in signed.replace(b"\r\n ", b"")
    assert verify(signed)


def test_signing_from_many_threads() -> None:
    sign = signer()
    messages = [message(html=f"<p>{n}</p>") for n in range(16)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        signed = list(pool.map(sign.sign, messages))
    assert all(s.endswith(m) for s, m in zip(signed, messages, strict=True))
    assert all(verify(s) for s in signed)


def test_signer_validates_its_arguments() -> None:
    with pytest.raises(ValueError, match="From"):
        DkimSigner(selector="s", domain=DOMAIN, private_key_pem=pem(), headers=(b"To", b"Subject"))
    with pytest.raises(ValueError, match="ASCII"):
        DkimSigner(selector="s", domain="bücher.example", private_key_pem=pem())
    with pytest.raises(ValueError, match="PEM"):
        DkimSigner(selector="s", domain=DOMAIN, private_key_pem=b"not a key")
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="RSA or Ed25519"):
        DkimSigner(selector="s", domain=DOMAIN, private_key_pem=ec_pem)


def test_load_private_key_inline_escaped_and_from_file(tmp_path: Path) -> None:
    expected = pem(serialization.PrivateFormat.TraditionalOpenSSL)
    inline = pem().decode("ascii")
    assert load_private_key(inline) == expected
    assert load_private_key(inline.replace("\n", "\\n")) == expected
    assert load_private_key(inline.replace("\n", "\r\n")) == expected
    path = tmp_path / "dkim.pem"
    path.write_bytes(pem())
    assert load_private_key(str(path)) == expected
    with pytest.raises(ValueError, match="PEM"):
        load_private_key("-----BEGIN PRIVATE KEY-----\\ngarbage\\n-----END PRIVATE KEY-----")
    with pytest.raises(FileNotFoundError):
        load_private_key(str(tmp_path / "missing.pem"))


def test_dns_record_publishes_the_public_key() -> None:
    record = dns_record(pem())
    assert record.startswith("v=DKIM1; k=rsa; p=")
    der = base64.b64decode(record.split("p=", 1)[1])
    public = serialization.load_der_public_key(der)
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.public_numbers() == rsa_key().public_key().public_numbers()


def test_ed25519_key_signs_ed25519_sha256_that_verifies() -> None:
    """RFC 8463: an Ed25519 key gives a=ed25519-sha256, published as k=ed25519 with the raw public key."""
    record = dns_record(ed25519_pem())
    assert record.startswith("v=DKIM1; k=ed25519; p=")
    public = base64.b64decode(record.split("p=", 1)[1])
    assert len(public) == 32
    signer = DkimSigner(selector=SELECTOR, domain=DOMAIN, private_key_pem=ed25519_pem())
    original = message(headers=[("List-Unsubscribe", "<https://acme.example/u/1>")])
    signed = signer.sign(original)
    assert signed.startswith(b"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/simple; d=acme.example;")
    assert dkim.verify(signed, dnsfunc=dns_for(record))
    assert not dkim.verify(signed.replace(b"Subject: ", b"Subject: FWD "), dnsfunc=dns_for(record))
    assert not dkim.verify(signed, dnsfunc=dns_for(published_record()))  # not with the RSA key


def test_load_private_key_reads_ed25519(tmp_path: Path) -> None:
    path = tmp_path / "ed25519.pem"
    path.write_bytes(ed25519_pem())
    assert load_private_key(str(path)) == ed25519_pem()
    assert load_private_key(ed25519_pem().decode("ascii").replace("\n", "\\n")) == ed25519_pem()


@pytest.mark.parametrize("canonicalization", ["relaxed/relaxed", "simple/simple", "simple/relaxed"])
def test_other_canonicalizations_can_be_chosen(canonicalization: str) -> None:
    chosen = DkimSigner(
        selector=SELECTOR, domain=DOMAIN, private_key_pem=pem(), canonicalization=canonicalization
    )
    signed = chosen.sign(message())
    assert f"c={canonicalization};".encode() in signed.split(b"\r\n", 1)[0]
    assert verify(signed)
    # relaxed body canonicalisation tolerates a relay that re-spaces the text; simple does not
    respaced = signed.replace(b"<p>Hi Zo=C3=AB</p>", b"<p>Hi  Zo=C3=AB</p>")
    assert respaced != signed
    assert verify(respaced) == canonicalization.endswith("/relaxed")
    with pytest.raises(ValueError, match="canonicalization"):
        DkimSigner(selector=SELECTOR, domain=DOMAIN, private_key_pem=pem(), canonicalization="loose/simple")
