"""A company's domain is a domain, whatever URL shape it was sent in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadflow.contacts.normalize import domain


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        ("https://www.Acme.example/about?x", "acme.example"),
        ("acme.example", "acme.example"),
        ("  www.acme.example:8080  ", "acme.example"),
        ("HTTP://user:pw@Sub.Acme.Example./x#top", "sub.acme.example"),
        ("www.example", "www.example"),
        ("MÜNCHEN.example", "münchen.example"),
        ("https://xn--mnchen-3ya.example/", "münchen.example"),
    ],
)
def test_urls_and_hosts_become_the_domain(sent: str, expected: str) -> None:
    assert domain(sent) == expected


@pytest.mark.parametrize(
    "sent",
    [
        "",
        "localhost",
        "acme",
        "127.0.0.1",
        "http://[::1]/",
        "not a domain",
        "https://",
        "-bad-.example",
        "a..example",
        "under_score.example",
        "http://" + "a" * 64 + ".example",
        None,
        42,
        ["acme.example"],
    ],
)
def test_what_names_no_domain_is_refused(sent: object) -> None:
    assert domain(sent) is None


_label = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=20).filter(
    lambda label: label != "www"
)
_host = st.lists(_label, min_size=1, max_size=3).map(".".join).map(lambda h: f"{h}.example")


@given(
    host=_host,
    scheme=st.sampled_from(["", "http://", "https://", "HTTPS://"]),
    www=st.booleans(),
    port=st.sampled_from(["", ":80", ":8443"]),
    path=st.sampled_from(["", "/", "/about", "/a/b?x=1&y=2", "?q", "#frag"]),
    upper=st.booleans(),
)
def test_any_url_shape_of_a_host_gives_that_host(
    host: str, scheme: str, www: bool, port: str, path: str, upper: bool
) -> None:
    sent = f"{scheme}{'www.' if www else ''}{host}{port}{path}"
    assert domain(sent.upper() if upper else sent) == host


@given(st.text(max_size=80))
def test_the_answer_is_always_a_normal_domain_or_none(sent: str) -> None:
    found = domain(sent)
    assert found is None or (found == found.strip().lower() and "." in found and "/" not in found)
    assert found is None or domain(found) == found
