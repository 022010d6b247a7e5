"""Machine-generated opens and clicks: scanners, privacy proxies, honeypots, impossible speed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest

from leadflow.messaging.feedback.bots import classify

Kind = Literal["open", "click", "honeypot"]
SENT = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LATER = SENT + timedelta(minutes=7)

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1"
)
OUTLOOK = "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)"
THUNDERBIRD = "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.9.0"
CUBOT_PHONE = (
    "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.6099.144 Mobile Safari/537.36"
)
GMAIL_PROXY = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
YAHOO_PROXY = "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"


def hit(
    kind: Kind = "click",
    *,
    user_agent: str | None = CHROME,
    ip: str | None = "198.51.100.7",
    sent_at: datetime | None = SENT,
    at: datetime = LATER,
) -> str | None:
    return classify(user_agent=user_agent, ip=ip, sent_at=sent_at, at=at, kind=kind)


@pytest.mark.parametrize("agent", [CHROME, IPHONE, OUTLOOK, THUNDERBIRD, CUBOT_PHONE])
@pytest.mark.parametrize("kind", ["open", "click"])
def test_people_are_people(agent: str, kind: Kind) -> None:
    assert hit(kind, user_agent=agent) is None


@pytest.mark.parametrize("agent", [CHROME, None, GMAIL_PROXY])
def test_the_honeypot_is_always_a_machine(agent: str | None) -> None:
    assert hit("honeypot", user_agent=agent) == "honeypot"


@pytest.mark.parametrize(
    ("agent", "reason"),
    [
        ("Mozilla/5.0 (compatible; Barracuda Sentinel (EE))", "scanner:barracuda"),
        ("Mimecast URL Protect/1.0", "scanner:mimecast"),
        ("Mozilla/5.0 (compatible; Proofpoint URL Defense)", "scanner:proofpoint"),
        ("Microsoft Office Protocol Discovery", "scanner:microsoft"),
        ("Microsoft Office Existence Discovery", "scanner:microsoft"),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "BingPreview/1.0b",
            "scanner:microsoft",
        ),
        ("Symantec Email Security.cloud Link Scanner", "scanner:symantec"),
        ("Trend Micro Email Security URL Scanner", "scanner:trendmicro"),
        ("Cisco IronPort URL Filter", "scanner:cisco"),
        ("FireEye Email Security", "scanner:fireeye"),
        ("Forcepoint Email Security", "scanner:forcepoint"),
        ("python-requests/2.31.0", "scanner:python-requests"),
        ("Python-urllib/3.11", "scanner:python"),
        ("curl/8.5.0", "scanner:curl"),
        ("Wget/1.21.4", "scanner:wget"),
        ("Go-http-client/1.1", "scanner:go-http-client"),
        (
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 "
            "Safari/537.36",
            "scanner:headless-chrome",
        ),
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "scanner:generic"),
        ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "scanner:generic"),
        ("SomeCrawler/3.0", "scanner:generic"),
        ("Acme Link Preview Service", "scanner:generic"),
        ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "scanner:generic"),
        ("Java/17.0.2", "scanner:http-library"),
    ],
)
def test_scanners_by_user_agent(agent: str, reason: str) -> None:
    assert hit("click", user_agent=agent) == reason
    assert hit("open", user_agent=agent) == reason


def test_gmail_and_yahoo_image_proxies_are_not_opens() -> None:
    assert hit("open", user_agent=GMAIL_PROXY, ip="66.102.8.1") == "proxy:gmail"
    assert hit("open", user_agent=YAHOO_PROXY) == "proxy:yahoo"


@pytest.mark.parametrize(
    ("agent", "ip"),
    [
        ("Mozilla/5.0", "203.0.113.9"),  # MPP's bare agent, whatever the address
        (IPHONE, "17.58.100.3"),  # Apple's network
        ("Mozilla/5.0", "17.1.2.3"),
        (None, "17.1.2.3"),
        (IPHONE, "::ffff:17.58.100.3"),  # IPv4-mapped
    ],
)
def test_apple_mail_privacy_protection(agent: str | None, ip: str) -> None:
    assert hit("open", user_agent=agent, ip=ip) == "proxy:apple"


def test_apple_rules_only_apply_to_opens() -> None:
    assert hit("click", user_agent=IPHONE, ip="17.58.100.3") is None


@pytest.mark.parametrize("ip", ["18.0.0.1", "16.255.255.255", "not an ip", "", None, "2001:db8::1"])
def test_other_addresses_are_not_apple(ip: str | None) -> None:
    assert hit("open", user_agent=IPHONE, ip=ip) is None


def test_a_bare_mozilla_with_details_is_a_browser() -> None:
    assert hit("open", user_agent="Mozilla/5.0 (Macintosh)") is None


@pytest.mark.parametrize(
    ("delay", "reason"),
    [
        (timedelta(seconds=0), "too_fast"),
        (timedelta(seconds=1.999), "too_fast"),
        (timedelta(seconds=-30), "too_fast"),  # only clock skew explains a click before the send
        (timedelta(seconds=2), None),
        (timedelta(hours=3), None),
    ],
)
def test_clicks_right_after_the_send_are_machines(delay: timedelta, reason: str | None) -> None:
    assert hit("click", at=SENT + delay) == reason


def test_speed_rule_is_for_clicks_only() -> None:
    assert hit("open", at=SENT + timedelta(seconds=1)) is None


def test_unknown_send_time_is_not_too_fast() -> None:
    assert hit("click", sent_at=None, at=SENT) is None


def test_naive_times_are_read_as_utc() -> None:
    naive_sent = datetime(2026, 3, 2, 9, 0)
    assert hit("click", sent_at=naive_sent, at=SENT + timedelta(seconds=1)) == "too_fast"
    assert hit("click", sent_at=naive_sent, at=SENT + timedelta(seconds=3)) is None


@pytest.mark.parametrize("agent", [None, "", "   "])
@pytest.mark.parametrize("kind", ["open", "click"])
def test_no_user_agent_is_a_machine(agent: str | None, kind: Kind) -> None:
    assert hit(kind, user_agent=agent) == "no_user_agent"


def test_the_most_specific_reason_wins() -> None:
    assert hit("click", user_agent="curl/8.5.0", at=SENT) == "scanner:curl"  # scanner before too_fast
    assert hit("click", user_agent=None, at=SENT) == "too_fast"  # too_fast before no_user_agent
    assert hit("open", user_agent=GMAIL_PROXY, ip="17.1.2.3") == "proxy:gmail"
