"""``leadflow doctor``: what real sending still lacks. Run as the installed command (a fresh install fails
every check, a configured one passes them all), plus each check's reasons in-process. The doctor reads
settings only, so it does not depend on the database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from leadflow.kernel.settings import Settings
from leadflow.messaging import doctor
from tests.peers.http_receiver import HttpReceiver, closed_port_url
from tests.peers.smtp import SmtpPeer

LEADFLOW = Path(sys.executable).with_name("leadflow")
SENDER = "Course School <hello@school.example>"
BASE_URL = "http://crm.school.example"


def _run(tmp_path: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """The installed ``leadflow`` command with only these settings (and HTTP proxies) in its environment."""
    keep = {k: v for k, v in os.environ.items() if not k.startswith("LEADFLOW_") and "proxy" not in k.lower()}
    env = {**keep, "PYTHONIOENCODING": "utf-8", **settings}
    return subprocess.run(
        [str(LEADFLOW), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_fresh_install_fails_every_check_and_says_what_to_set(tmp_path: Path) -> None:
    result = _run(tmp_path, "doctor")
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert [line[0] for line in lines[:-1]] == ["✘"] * 7
    assert lines[-1] == "7 of 7 checks fail: fix them before sending real email."
    for setting in (
        "LEADFLOW_SMTP_URL",
        "LEADFLOW_EMAIL_FROM",
        "LEADFLOW_BRAND_NAME",
        "LEADFLOW_BRAND_URL",
        "LEADFLOW_BRAND_ADDRESS",
        "leadflow email dkim-keygen",
        "LEADFLOW_BASE_URL",
    ):
        assert setting in result.stdout


def test_a_configured_install_passes_every_check(tmp_path: Path) -> None:
    key = tmp_path / "dkim.pem"
    assert _run(tmp_path, "email", "dkim-keygen", str(key)).returncode == 0
    with SmtpPeer(auth=("mailer", "s3cret")) as smtp, HttpReceiver() as proxy:
        result = _run(
            tmp_path,
            "doctor",
            LEADFLOW_SMTP_URL=smtp.url,
            LEADFLOW_EMAIL_FROM=SENDER,
            LEADFLOW_BRAND_ADDRESS="1 Main St, Springfield",
            LEADFLOW_DKIM_SELECTOR="leadflow",
            LEADFLOW_DKIM_PRIVATE_KEY_FILE=str(key),
            LEADFLOW_BASE_URL=BASE_URL,
            http_proxy=proxy.url,  # the public address, reached through a forward proxy
        )
        assert [request.path for request in proxy.requests] == [f"{BASE_URL}/healthz"]
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert [line[0] for line in lines[:-1]] == ["✔"] * 7
    assert "Course School (from the sender's display name)" in result.stdout
    assert "https://school.example (from the sender's domain)" in result.stdout
    assert "DKIM leadflow._domainkey.school.example: rsa key" in result.stdout
    assert lines[-1] == "all 7 checks pass: ready to send."


def _check(name: str, **values: Any) -> doctor.Check:
    """One check, run in-process on these settings."""
    found = {check.name: check for check in doctor.checks(Settings(**values), timeout=3.0)}
    return found[name]


def test_an_smtp_server_that_refuses_the_login_or_is_not_there_fails() -> None:
    with SmtpPeer(auth=("mailer", "s3cret")) as smtp:
        wrong = smtp.url.replace("s3cret", "wrong")
        refused = _check("SMTP server", smtp_url=wrong)
    assert not refused.ok
    assert "535" in refused.detail
    gone = _check(
        "SMTP server", smtp_url=closed_port_url().replace("http://", "smtp://").removesuffix("/hook")
    )
    assert not gone.ok
    assert "does not answer" in gone.detail
    assert "must start with smtp://" in _check("SMTP server", smtp_url="http://mail.example").detail


def test_dkim_must_sign_for_the_from_domain_with_a_readable_key(tmp_path: Path) -> None:
    key = tmp_path / "dkim.pem"
    assert _run(tmp_path, "email", "dkim-keygen", str(key), "--type", "ed25519").returncode == 0
    common = {"email_from": SENDER, "dkim_selector": "s1", "dkim_private_key_file": str(key)}
    assert _check("DKIM s1._domainkey.school.example", **common).ok
    parent = _check(
        "DKIM s1._domainkey.school.example",
        **{**common, "email_from": "a@news.school.example", "dkim_domain": "school.example"},
    )
    assert parent.ok  # relaxed alignment: a parent domain signs for its subdomains
    other = _check("DKIM s1._domainkey.other.example", **{**common, "dkim_domain": "other.example"})
    assert not other.ok
    assert "LEADFLOW_DKIM_DOMAIN" in other.detail
    missing = _check("DKIM", **{**common, "dkim_private_key_file": str(tmp_path / "nope.pem")})
    assert not missing.ok
    assert "cannot be read" in missing.detail
    key.write_text("not a key")
    broken = _check("DKIM s1._domainkey.school.example", **common)
    assert not broken.ok
    assert "unusable" in broken.detail


@pytest.mark.parametrize(
    ("base_url", "why"),
    [
        ("http://127.0.0.1:8000", "not reachable by recipients"),
        ("http://localhost:8000", "not reachable by recipients"),
        ("http://10.0.0.5", "not reachable by recipients"),
    ],
)
def test_a_local_base_url_fails(base_url: str, why: str) -> None:
    check = _check("base URL", base_url=base_url)
    assert not check.ok
    assert why in check.detail


def test_a_base_url_must_answer_as_leadflow(monkeypatch: pytest.MonkeyPatch) -> None:
    with HttpReceiver() as proxy:
        monkeypatch.setenv("http_proxy", proxy.url)
        proxy.reply(404)
        wrong = _check("base URL", base_url=BASE_URL)
        right = _check("base URL", base_url=BASE_URL)
    assert not wrong.ok
    assert "answers 404" in wrong.detail
    assert right.ok
