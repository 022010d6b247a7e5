"""``leadflow email dkim-keygen`` and ``dkim-record``: the key a deployment signs with and the TXT record
receivers verify it against."""

from __future__ import annotations

import re
import stat
from datetime import UTC, datetime
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.kernel.clock import VirtualClock
from leadflow.messaging.build.dkim import DkimSigner, dns_record
from leadflow.messaging.build.mime import build

runner = CliRunner()


def _txt(output: str) -> tuple[str, str]:
    """``(name, value)`` of the record line: the quoted strings joined, as a resolver returns them."""
    line = next(line for line in output.splitlines() if "._domainkey." in line)
    name = line.split()[0]
    strings = re.findall(r'"([^"]*)"', line)
    assert all(len(part) <= 255 for part in strings)
    return name, "".join(strings)


def test_keygen_writes_an_owner_only_rsa_key_and_prints_its_record(tmp_path: Path) -> None:
    out = tmp_path / "dkim.pem"
    result = runner.invoke(app, ["email", "dkim-keygen", str(out), "--selector", "mail2026"])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    key = serialization.load_pem_private_key(out.read_bytes(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    assert "LEADFLOW_DKIM_SELECTOR=mail2026" in result.output
    assert f"LEADFLOW_DKIM_PRIVATE_KEY_FILE={out.resolve()}" in result.output
    name, value = _txt(result.output)
    assert name == "mail2026._domainkey.<domain>"
    assert value == dns_record(out.read_bytes())


def test_keygen_makes_ed25519_keys_too(tmp_path: Path) -> None:
    out = tmp_path / "ed.pem"
    result = runner.invoke(app, ["email", "dkim-keygen", str(out), "--type", "ed25519"])
    assert result.exit_code == 0, result.output
    assert isinstance(serialization.load_pem_private_key(out.read_bytes(), None), ed25519.Ed25519PrivateKey)
    assert _txt(result.output)[1].startswith("v=DKIM1; k=ed25519; p=")


@pytest.mark.parametrize(
    ("arguments", "code"), [(["--type", "dsa"], 2), (["--bits", "1024"], 2), (["--bits", "9000"], 2)]
)
def test_keygen_refuses_bad_options_and_writes_nothing(
    tmp_path: Path, arguments: list[str], code: int
) -> None:
    out = tmp_path / "dkim.pem"
    result = runner.invoke(app, ["email", "dkim-keygen", str(out), *arguments])
    assert result.exit_code == code
    assert not out.exists()


def test_keygen_never_overwrites_a_key(tmp_path: Path) -> None:
    out = tmp_path / "dkim.pem"
    out.write_bytes(b"the key in use")
    result = runner.invoke(app, ["email", "dkim-keygen", str(out)])
    assert result.exit_code == 1
    assert "not overwritten" in result.output
    assert out.read_bytes() == b"the key in use"


def test_the_printed_record_verifies_what_leadflow_signs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "dkim.pem"
    assert runner.invoke(app, ["email", "dkim-keygen", str(out)]).exit_code == 0
    monkeypatch.setenv("LEADFLOW_DKIM_SELECTOR", "s1")
    monkeypatch.setenv("LEADFLOW_DKIM_PRIVATE_KEY_FILE", str(out))
    monkeypatch.setenv("LEADFLOW_EMAIL_FROM", "Acme <news@acme.example>")
    result = runner.invoke(app, ["email", "dkim-record"])
    assert result.exit_code == 0, result.output
    name, value = _txt(result.output)
    assert name == "s1._domainkey.acme.example"
    clock = VirtualClock(datetime(2026, 5, 1, tzinfo=UTC))
    signed = DkimSigner(
        selector="s1", domain="acme.example", private_key_pem=out.read_bytes(), clock=clock
    ).sign(
        build(
            from_addr="Acme <news@acme.example>",
            to_addr="zoe@example.com",
            subject="Hello",
            html="<p>Hi</p>",
            text="Hi",
            message_id="1@acme.example",
            date=clock.now(),
        )
    )

    def lookup(queried: bytes, timeout: int = 5) -> bytes | None:
        return value.encode() if queried == f"{name}.".encode() else None

    assert dkim.verify(signed, dnsfunc=lookup)


def test_record_without_dkim_configured_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("LEADFLOW_DKIM_SELECTOR", "LEADFLOW_DKIM_PRIVATE_KEY", "LEADFLOW_DKIM_PRIVATE_KEY_FILE"):
        monkeypatch.delenv(name, raising=False)
    result = runner.invoke(app, ["email", "dkim-record"])
    assert result.exit_code == 2
    assert "DKIM is off" in result.output


def test_record_with_an_unusable_key_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_DKIM_SELECTOR", "s1")
    monkeypatch.setenv(
        "LEADFLOW_DKIM_PRIVATE_KEY", "-----BEGIN PRIVATE KEY-----\\nbroken\\n-----END PRIVATE KEY-----"
    )
    result = runner.invoke(app, ["email", "dkim-record"])
    assert result.exit_code == 2
    assert "cannot be used" in result.output


def test_record_lists_the_second_key_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rsa_file, ed_file = tmp_path / "rsa.pem", tmp_path / "ed.pem"
    assert runner.invoke(app, ["email", "dkim-keygen", str(rsa_file)]).exit_code == 0
    assert runner.invoke(app, ["email", "dkim-keygen", str(ed_file), "--type", "ed25519"]).exit_code == 0
    monkeypatch.setenv("LEADFLOW_EMAIL_FROM", "news@acme.example")
    monkeypatch.setenv("LEADFLOW_DKIM_SELECTOR", "rsa1")
    monkeypatch.setenv("LEADFLOW_DKIM_PRIVATE_KEY_FILE", str(rsa_file))
    monkeypatch.setenv("LEADFLOW_DKIM_SECOND_SELECTOR", "ed1")
    monkeypatch.setenv("LEADFLOW_DKIM_SECOND_PRIVATE_KEY_FILE", str(ed_file))
    result = runner.invoke(app, ["email", "dkim-record"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if "._domainkey." in line]
    assert [line.split()[0] for line in lines] == [
        "rsa1._domainkey.acme.example",
        "ed1._domainkey.acme.example",
    ]
    assert "k=rsa" in lines[0]
    assert "k=ed25519" in lines[1]


def test_record_with_a_missing_key_file_is_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADFLOW_DKIM_SELECTOR", "s1")
    monkeypatch.setenv("LEADFLOW_DKIM_PRIVATE_KEY_FILE", str(tmp_path / "missing.pem"))
    result = runner.invoke(app, ["email", "dkim-record"])
    assert result.exit_code == 2
    assert "cannot be read" in result.output


def test_keygen_into_a_missing_folder_is_an_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["email", "dkim-keygen", str(tmp_path / "nowhere" / "dkim.pem")])
    assert result.exit_code == 1
    assert "cannot be written" in result.output
