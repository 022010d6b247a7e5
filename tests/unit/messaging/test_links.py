"""Link tracking: which links are rewritten, what the tokens carry, where the pixel and honeypot go."""

from __future__ import annotations

import re
from collections.abc import Collection
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadflow.kernel.clock import VirtualClock
from leadflow.messaging.build.links import (
    _ANCHOR_HREF,
    _rewrite_anchors,
    decode_click,
    decode_honeypot,
    decode_open,
    track,
)
from leadflow.messaging.build.tokens import BadToken, Tokens

BASE = "https://t.example.com"
MESSAGE_ID = "01JQ8Z6M4T3V7W9X2Y5A000001"
UNSUBSCRIBE = "https://mail.example.com/u/Zm9vYmFy?c=1&t=2"
CLICK = re.compile(re.escape(BASE) + r"/t/c/([A-Za-z0-9_.-]+)")

NEWSLETTER = f"""<!doctype html>
<html><head><title>Spring news</title><style>a > span {{ color: red; }}</style></head>
<body style="margin:0;background:#f4f4f4">
<table role="presentation"><tr><td>
<a href="https://www.example.com/pricing?utm_source=news&amp;utm_medium=email" target="_blank"
   style="color:#0066cc;text-decoration:underline">See pricing</a>
<A HREF='https://Example.com/Blog/Post' class='link'>Read the story</A>
<a class="btn" title="Go > now" href="http://app.example.com/signup?plan=pro">Start</a>
<a href=https://example.com/bare>bare</a>
<a
   data-track="no"
   href="https://example.com/multi-line"
>multi-line tag</a>
<a href="mailto:help@example.com">Mail us</a> <a href="tel:+441234567890">Call us</a>
<a href="#top">Top</a> <a href="/relative/path">Relative</a> <a href="javascript:void(0)">JS</a>
<a href="https://example.com/{{{{ contact.id }}}}">Liquid leftover</a>
<a href="{{% unsubscribe_url %}}">Liquid tag</a>
<a href="{UNSUBSCRIBE.replace("&", "&amp;")}">Unsubscribe</a>
<a data-href="https://example.com/data-attr" name="x">not a link</a>
<abbr title="https://example.com/abbr">abbr</abbr>
</td></tr></table>
</body>
</html>"""


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock(datetime(2026, 3, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def tokens(clock: VirtualClock) -> Tokens:
    return Tokens("links-test-secret", clock)


def tracked(
    tokens: Tokens, html: str = NEWSLETTER, *, skip: Collection[str] = (), base_url: str = BASE
) -> str:
    return track(html, message_id=MESSAGE_ID, base_url=base_url, tokens=tokens, skip=skip)


def click_targets(tokens: Tokens, html: str) -> list[tuple[str, str]]:
    return [decode_click(tokens, token) for token in CLICK.findall(html)]


def test_web_links_go_through_the_click_endpoint(tokens: Tokens) -> None:
    html = tracked(tokens, skip=[UNSUBSCRIBE])
    assert click_targets(tokens, html) == [
        (MESSAGE_ID, "https://www.example.com/pricing?utm_source=news&utm_medium=email"),
        (MESSAGE_ID, "https://Example.com/Blog/Post"),
        (MESSAGE_ID, "http://app.example.com/signup?plan=pro"),
        (MESSAGE_ID, "https://example.com/bare"),
        (MESSAGE_ID, "https://example.com/multi-line"),
    ]


def test_everything_else_in_the_tag_is_kept(tokens: Tokens) -> None:
    html = tracked(tokens, skip=[UNSUBSCRIBE])
    assert re.search(
        r'<a href="https://t\.example\.com/t/c/[^"]+" target="_blank"\n'
        r'   style="color:#0066cc;text-decoration:underline">See pricing</a>',
        html,
    )
    assert re.search(r"<A HREF='https://t\.example\.com/t/c/[^']+' class='link'>Read the story</A>", html)
    assert re.search(
        r'<a class="btn" title="Go > now" href="https://t\.example\.com/t/c/[^"]+">Start</a>', html
    )
    assert re.search(r"<a href=https://t\.example\.com/t/c/[A-Za-z0-9_.-]+>bare</a>", html)
    assert re.search(r'<a\n   data-track="no"\n   href="https://t\.example\.com/t/c/[^"]+"\n>multi', html)


@pytest.mark.parametrize(
    "untouched",
    [
        '<a href="mailto:help@example.com">',
        '<a href="tel:+441234567890">',
        '<a href="#top">',
        '<a href="/relative/path">',
        '<a href="javascript:void(0)">',
        '<a href="https://example.com/{{ contact.id }}">',
        '<a href="{% unsubscribe_url %}">',
        '<a href="https://mail.example.com/u/Zm9vYmFy?c=1&amp;t=2">',
        '<a data-href="https://example.com/data-attr" name="x">',
        '<abbr title="https://example.com/abbr">',
        "<style>a > span { color: red; }</style>",
    ],
)
def test_other_links_and_markup_are_left_alone(tokens: Tokens, untouched: str) -> None:
    assert untouched in tracked(tokens, skip=[UNSUBSCRIBE])


def test_skip_matches_the_raw_attribute_value_too(tokens: Tokens) -> None:
    html = tracked(tokens, skip=["https://mail.example.com/u/Zm9vYmFy?c=1&amp;t=2"])
    assert '<a href="https://mail.example.com/u/Zm9vYmFy?c=1&amp;t=2">Unsubscribe</a>' in html


def test_without_skip_the_unsubscribe_link_would_be_tracked(tokens: Tokens) -> None:
    html = tracked(tokens)
    assert (MESSAGE_ID, UNSUBSCRIBE) in click_targets(tokens, html)


def test_entities_are_decoded_for_the_redirect_target(tokens: Tokens) -> None:
    html = '<a href="https://example.com/?a=1&amp;b=&lt;2&gt;&#38;c=3&quot;">x</a>'
    (token,) = CLICK.findall(tracked(tokens, html))
    assert decode_click(tokens, token) == (MESSAGE_ID, 'https://example.com/?a=1&b=<2>&c=3"')


def test_a_repeated_url_gets_the_same_token(tokens: Tokens) -> None:
    html = '<a href="https://example.com/x">one</a> <a href="https://example.com/x">two</a>'
    first, second = CLICK.findall(tracked(tokens, html))
    assert first == second


def test_links_already_tracked_are_not_wrapped_again(tokens: Tokens) -> None:
    once = tracked(tokens, '<a href="https://example.com/x">x</a>')
    twice = tracked(tokens, once)
    assert CLICK.findall(twice) == CLICK.findall(once)


def test_pixel_goes_before_the_end_of_the_body_and_honeypot_after_its_start(tokens: Tokens) -> None:
    html = tracked(tokens, skip=[UNSUBSCRIBE])
    pixel = re.search(
        r'<img src="https://t\.example\.com/t/o/([A-Za-z0-9_.-]+)" width="1" height="1" alt="" '
        r'style="display:block;border:0"></body>\n</html>$',
        html,
    )
    honeypot = re.search(
        r'<body style="margin:0;background:#f4f4f4"><a href="https://t\.example\.com/t/h/([A-Za-z0-9_.-]+)" '
        r'style="display:none" aria-hidden="true" tabindex="-1">&#8203;</a>\n<table',
        html,
    )
    assert pixel is not None
    assert honeypot is not None
    assert decode_open(tokens, pixel.group(1)) == MESSAGE_ID
    assert decode_honeypot(tokens, honeypot.group(1)) == MESSAGE_ID


def test_fragments_get_pixel_and_honeypot_at_the_end(tokens: Tokens) -> None:
    html = tracked(tokens, "<p>Hello</p>")
    assert html.startswith("<p>Hello</p><a href=")
    assert re.search(
        r'/t/h/[^"]+" style="display:none"[^>]*>&#8203;</a><img src="[^"]+/t/o/[^"]+"[^>]*>$', html
    )


def test_uppercase_body_tags(tokens: Tokens) -> None:
    html = tracked(tokens, "<HTML><BODY BGCOLOR='#fff'><P>Hi</P></BODY></HTML>")
    assert re.match(
        r"<HTML><BODY BGCOLOR='#fff'><a href=\"[^\"]+/t/h/[^\"]+\"[^>]*>&#8203;</a><P>Hi</P><img ", html
    )
    assert html.endswith('style="display:block;border:0"></BODY></HTML>')


def test_the_pixel_goes_before_the_last_body_end_wherever_it_is(tokens: Tokens) -> None:
    trailer = "<!-- " + "x" * 2000 + " -->\n</html>"
    html = tracked(tokens, "<html><body><p>Hi</p><!-- </body> --><p>Bye</p></body>" + trailer)
    assert re.search(r"<p>Bye</p><img [^>]+></body>" + re.escape(trailer) + "$", html)
    assert "<!-- </body> --><p>Bye</p>" in html


def test_base_url_trailing_slash_is_ignored(tokens: Tokens) -> None:
    html = tracked(tokens, '<a href="https://example.com/">x</a>', base_url=BASE + "/")
    assert "https://t.example.com/t/c/" in html
    assert "example.com//t/" not in html


def test_token_kinds_are_not_interchangeable(tokens: Tokens) -> None:
    html = tracked(tokens, '<body><a href="https://example.com/">x</a></body>')
    click = CLICK.findall(html)[0]
    opened = re.findall(r"/t/o/([A-Za-z0-9_.-]+)", html)[0]
    honeypot = re.findall(r"/t/h/([A-Za-z0-9_.-]+)", html)[0]
    with pytest.raises(BadToken):
        decode_open(tokens, click)
    with pytest.raises(BadToken):
        decode_click(tokens, opened)
    with pytest.raises(BadToken):
        decode_honeypot(tokens, opened)
    with pytest.raises(BadToken):
        decode_open(tokens, honeypot)


def test_click_tokens_only_redirect_to_web_urls(tokens: Tokens) -> None:
    """Defence in depth: even a correctly signed click token must carry an http(s) URL and a message id."""
    for payload in (
        [MESSAGE_ID, "javascript:alert(1)"],
        [MESSAGE_ID, "//evil.example/"],
        ["https://example.com/"],
        [MESSAGE_ID, "https://example.com/", "extra"],
        {"url": "https://example.com/"},
    ):
        with pytest.raises(BadToken) as caught:
            decode_click(tokens, tokens.sign("click", payload))
        assert caught.value.reason == "malformed"


def test_forged_click_tokens_are_refused(clock: VirtualClock, tokens: Tokens) -> None:
    forged = Tokens("attacker-secret", clock).sign("click", [MESSAGE_ID, "https://evil.example/"])
    with pytest.raises(BadToken) as caught:
        decode_click(tokens, forged)
    assert caught.value.reason == "invalid"


def test_decoders_honour_max_age(clock: VirtualClock, tokens: Tokens) -> None:
    html = tracked(tokens, '<a href="https://example.com/">x</a>')
    (token,) = CLICK.findall(html)
    clock.advance(timedelta(days=31))
    assert decode_click(tokens, token) == (MESSAGE_ID, "https://example.com/")
    with pytest.raises(BadToken) as caught:
        decode_click(tokens, token, max_age=timedelta(days=30))
    assert caught.value.reason == "expired"


ANCHOR_PIECES = [
    "<a",
    "<A",
    "<abbr>",
    ' href="https://x.example/p"',
    " HREF='http://y.example/'",
    " href=z",
    ">",
]
ANCHOR_PIECES += ["</a>", " title='>'", ' data-href="https://no.example/"', "text", "\n", "<b>", "é", "<a\n"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(ANCHOR_PIECES), max_size=25).map("".join))
def test_anchor_rewriting_finds_what_the_pattern_finds_anywhere(html: str) -> None:
    """Trying the pattern only where ``<a``/``<A`` starts rewrites exactly the matches of a full scan."""

    def rewrite(match: re.Match[str]) -> str:
        return f"[{match.start()}:{match.group(0)}]"

    assert _rewrite_anchors(html, rewrite) == _ANCHOR_HREF.sub(rewrite, html)
