"""Who the email speaks for when the operator set only part of it (leadflow.kernel.brand)."""

from __future__ import annotations

from typing import Any

import pytest

from leadflow.kernel.brand import brand, is_local_host, require_postal_address, sales_address
from leadflow.kernel.errors import Invalid
from leadflow.kernel.settings import Settings


def _settings(**values: Any) -> Settings:
    return Settings(**values)


def test_the_name_and_site_come_from_the_sender_when_only_it_is_set() -> None:
    found = brand(_settings(email_from="Course School <hello@school.example>"))
    assert (found.name, found.name_from) == ("Course School", "sender name")
    assert (found.url, found.url_from) == ("https://school.example", "sender domain")
    assert found.address == ""


def test_settings_win_over_what_the_sender_suggests() -> None:
    found = brand(
        _settings(
            email_from="Course School <hello@school.example>",
            brand_name="Academy",
            brand_url="https://academy.example/",
            brand_address=" 1 Main St, Springfield ",
        )
    )
    assert found.variables() == {
        "name": "Academy",
        "url": "https://academy.example",
        "address": "1 Main St, Springfield",
    }
    assert (found.name_from, found.url_from) == ("setting", "setting")


@pytest.mark.parametrize(
    ("sender", "name", "url"),
    [
        ("hello@news.school.example", "school.example", "https://school.example"),
        ("leadflow <hello@mail.school.example>", "school.example", "https://school.example"),
        ('"Ann\'s Bakery" <ann@bakery.example>', "Ann's Bakery", "https://bakery.example"),
    ],
)
def test_without_a_display_name_the_sending_domain_names_the_brand(sender: str, name: str, url: str) -> None:
    found = brand(_settings(email_from=sender))
    assert (found.name, found.url) == (name, url)


def test_the_default_sender_never_makes_the_brand_leadflow() -> None:
    found = brand(_settings(base_url="https://crm.school.example"))
    assert found.name.lower() != "leadflow"
    assert (found.url, found.url_from) == ("https://crm.school.example", "base url")


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("localhost", True),
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("[::1]", True),
        ("box.local", True),
        ("intranet", True),
        ("school.example", False),
        ("8.8.8.8", False),
    ],
)
def test_local_hosts(host: str, local: bool) -> None:
    assert is_local_host(host) is local


@pytest.mark.parametrize(
    ("values", "inbox"),
    [
        (
            {"sales_email": "Sales <sales@school.example>", "email_reply_to": "r@school.example"},
            "sales@school.example",
        ),
        ({"email_reply_to": "Office <r@school.example>"}, "r@school.example"),
        ({"email_from": "Course School <hello@school.example>"}, "hello@school.example"),
        ({"email_from": "no address at all"}, None),
    ],
)
def test_the_sales_inbox(values: dict[str, str], inbox: str | None) -> None:
    assert sales_address(_settings(**values)) == inbox


def test_marketing_needs_a_postal_address() -> None:
    with pytest.raises(Invalid) as refused:
        require_postal_address(_settings(brand_address="  "), "a broadcast")
    assert refused.value.code == "missing_postal_address"
    assert "LEADFLOW_BRAND_ADDRESS" in refused.value.message
    assert refused.value.message.startswith("a broadcast needs")
    require_postal_address(_settings(brand_address="1 Main St"), "a broadcast")
