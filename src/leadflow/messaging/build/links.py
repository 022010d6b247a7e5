"""Click and open tracking: rewrite a rendered email's links, add an open pixel and a honeypot link.

:func:`track` works on the final HTML (after Liquid rendering) with regular expressions, not a DOM parser:
it runs for every message of a bulk send, and it must not reformat the markup, which email clients are
notoriously picky about. Only ``<a>`` tags are rewritten (not Outlook's VML ``<v:roundrect href>`` buttons,
which then go straight to their target, untracked).

Rules:

* Every ``<a href="http(s)://...">`` becomes ``{base_url}/t/c/{token}``; everything else in the tag (other
  attributes, the quoting style, the case of ``HREF``) is left as it was.
* Left alone: ``mailto:``, ``tel:``, fragments (``#top``), relative URLs, anything still carrying Liquid
  (``{{``/``{%``: a template that was not rendered, never a real destination), URLs listed in ``skip``
  (the unsubscribe and preferences links, which must work without a redirect and must not count as clicks),
  and links already pointing at ``{base_url}/t/`` (already tracked).
* The href is HTML-decoded (``&amp;`` -> ``&``) before it goes into the token: the redirect target is the
  real URL, exactly as the browser would have followed it.
* **No open redirect.** The click token carries ``(message_id, url)`` and is signed (purpose ``"click"``),
  so the click endpoint redirects only to a URL that was in a message we sent; it never takes a target from
  the query string. :func:`decode_click` also re-checks that the URL is http(s).
* An open pixel (a 1x1 image at ``{base_url}/t/o/{token}``) goes just before ``</body>`` (or at the end).
* A honeypot link (``{base_url}/t/h/{token}``) goes just after ``<body>`` (or, failing a body tag, next to
  the pixel). It is hidden from people (``display:none``, ``aria-hidden``, out of the tab order, its only
  text a zero-width space) but security scanners that follow every link of a message follow it, which
  identifies their other hits as machine-generated (see :mod:`leadflow.messaging.feedback.bots`). It comes
  first in the body because some scanners only follow the first few links.

Each kind has its own token purpose, so an open token is never accepted as a click or honeypot token.
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Callable, Collection, Iterator
from datetime import timedelta
from typing import Any

from leadflow.messaging.build.tokens import BadToken, Tokens

__all__ = ["decode_click", "decode_honeypot", "decode_open", "track"]

CLICK, OPEN, HONEYPOT = "click", "open", "honeypot"

# An <a ...> start tag up to its href value. Quoted attribute values are skipped whole, so a ">" inside one
# does not end the tag; "\s" before href keeps data-href and the like out. Neither a tag nor a quoted value
# spans a "<" (as in htmltext): a start that does not match stops at the next "<", so the scan of HTML from
# an untrusted template is linear ("<a <a <a ..." used to rescan to the end from every "<a": 15 KB took 3 s).
_ANCHOR_HREF = re.compile(
    r"""(<a\b(?:[^<>"']|"[^<"]*+"|'[^<']*+')*?\shref\s*=\s*)(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""",
    re.IGNORECASE,
)
_BODY_OPEN = re.compile(r"""<body\b(?:[^<>"']++|"[^<"]*+"|'[^<']*+')*+>""", re.IGNORECASE)
_BODY_CLOSE = re.compile(r"</body\s*>", re.IGNORECASE)
_HTTP = re.compile(r"https?://", re.IGNORECASE)


def track(html: str, *, message_id: str, base_url: str, tokens: Tokens, skip: Collection[str] = ()) -> str:
    """``html`` with its web links going through the click endpoint, an open pixel and a honeypot link."""
    base = htmllib.escape(base_url.rstrip("/"), quote=True)
    tracked = _rewrite_anchors(html, _Rewriter(message_id, base, tokens.signer(CLICK), skip))
    pixel = (
        f'<img src="{base}/t/o/{tokens.sign(OPEN, [message_id])}" width="1" height="1" alt="" '
        'style="display:block;border:0">'
    )
    honeypot = (
        f'<a href="{base}/t/h/{tokens.sign(HONEYPOT, [message_id])}" style="display:none" '
        'aria-hidden="true" tabindex="-1">&#8203;</a>'
    )
    return _insert(tracked, pixel, honeypot)


def _rewrite_anchors(html: str, rewrite: Callable[[re.Match[str]], str]) -> str:
    """``_ANCHOR_HREF.sub(rewrite, html)``, with the pattern only tried where ``<a`` or ``<A`` starts (the
    only places a match can start): a case-insensitive pattern is scanned for slowly, a substring quickly."""
    parts: list[str] = []
    done = 0  # html[:done] is in parts
    for start in _anchor_starts(html):
        if start < done:
            continue  # inside the previous match
        match = _ANCHOR_HREF.match(html, start)
        if match is not None:
            parts.append(html[done:start])
            parts.append(rewrite(match))
            done = match.end()
    if not parts:
        return html
    parts.append(html[done:])
    return "".join(parts)


def _anchor_starts(html: str) -> Iterator[int]:
    lower, upper = html.find("<a"), html.find("<A")
    while lower >= 0 or upper >= 0:
        if upper < 0 or 0 <= lower < upper:
            yield lower
            lower = html.find("<a", lower + 1)
        else:
            yield upper
            upper = html.find("<A", upper + 1)


class _Rewriter:
    """The substitution callback of :func:`track`, with a per-message cache of click tokens."""

    __slots__ = ("_base", "_message_id", "_own", "_seen", "_sign", "_skip")

    def __init__(self, message_id: str, base: str, sign: Callable[[Any], str], skip: Collection[str]) -> None:
        self._message_id = message_id
        self._base = base
        self._own = f"{htmllib.unescape(base)}/t/"
        self._sign = sign
        self._skip = frozenset(skip)
        self._seen: dict[str, str | None] = {}

    def __call__(self, match: re.Match[str]) -> str:
        group = match.lastindex or 4  # 2, 3 or 4: the href was double-quoted, single-quoted or bare
        value = match.group(group)
        if value in self._seen:
            rewritten = self._seen[value]
        else:
            target = self._target(value)
            quote = _QUOTES[group]
            rewritten = self._seen[value] = None if target is None else f"{quote}{target}{quote}"
        return match.group(0) if rewritten is None else match.group(1) + rewritten

    def _target(self, value: str) -> str | None:
        url = _unescape(value).strip()
        if (
            not url[:8].lower().startswith(("http://", "https://"))
            or "{{" in url
            or "{%" in url
            or url in self._skip
            or value in self._skip
            or url.startswith(self._own)
        ):
            return None
        return f"{self._base}/t/c/{self._sign([self._message_id, url])}"


_QUOTES = {2: '"', 3: "'", 4: ""}


def _unescape(value: str) -> str:
    """HTML-decode an attribute value; ``&amp;`` (by far the most common entity in hrefs) cheaply."""
    if "&" not in value:
        return value
    if "&" not in value.replace("&amp;", ""):
        return value.replace("&amp;", "&")
    return htmllib.unescape(value)


def _insert(html: str, pixel: str, honeypot: str) -> str:
    end = _body_close(html)
    opening = _body_open(html, len(html) if end < 0 else end)
    if opening is None:
        return html + honeypot + pixel if end < 0 else "".join((html[:end], honeypot, pixel, html[end:]))
    at = opening.end()
    if end < 0:
        return "".join((html[:at], honeypot, html[at:], pixel))
    return "".join((html[:at], honeypot, html[at:end], pixel, html[end:]))


def _body_open(html: str, end: int) -> re.Match[str] | None:
    """The ``<body ...>`` tag before ``end``: where the plain-case spelling is, else the slow way."""
    for spelling in ("<body", "<BODY"):
        at = html.find(spelling, 0, end)
        if at >= 0 and (match := _BODY_OPEN.match(html, at, end)) is not None:
            return match
    return _BODY_OPEN.search(html, 0, end)


def _body_close(html: str) -> int:
    """Where the last ``</body>`` starts, or -1. It is nearly always in the last few hundred characters."""
    starts = [match.start() for match in _BODY_CLOSE.finditer(html, max(0, len(html) - 512))]
    if not starts:
        starts = [match.start() for match in _BODY_CLOSE.finditer(html)]
    return starts[-1] if starts else -1


def decode_click(tokens: Tokens, token: str, *, max_age: timedelta | None = None) -> tuple[str, str]:
    """``(message_id, url)`` of a click token; :class:`BadToken` if it is not one of ours.

    The click endpoint redirects to ``url`` and nowhere else: it was signed from the message itself.
    """
    payload = tokens.load(CLICK, token, max_age=max_age)
    if (
        not isinstance(payload, list)
        or len(payload) != 2
        or not all(isinstance(part, str) for part in payload)
        or not _HTTP.match(payload[1])
    ):
        raise BadToken("malformed")
    return payload[0], payload[1]


def decode_open(tokens: Tokens, token: str, *, max_age: timedelta | None = None) -> str:
    """The message id of an open-pixel token."""
    return _message_id(tokens.load(OPEN, token, max_age=max_age))


def decode_honeypot(tokens: Tokens, token: str, *, max_age: timedelta | None = None) -> str:
    """The message id of a honeypot-link token."""
    return _message_id(tokens.load(HONEYPOT, token, max_age=max_age))


def _message_id(payload: Any) -> str:
    if not isinstance(payload, list) or len(payload) != 1 or not isinstance(payload[0], str):
        raise BadToken("malformed")
    return payload[0]
