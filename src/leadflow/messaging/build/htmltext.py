"""HTML to readable plain text, and the same worked out once for an HTML template with holes in it.

`html_to_text` converts finished HTML. `derive` converts HTML whose output values are still unknown (the
literal chunks of a Liquid template, with numbered holes for its outputs) into a `TextShape`: the text
with holes, plus the few facts about the values that the conversion relied on. `TextShape.text` fills in
the values (as plain text: what html_to_text would have decoded from their escaped HTML form) and gives
exactly ``html_to_text(rendered html)``, or None when a value breaks one of those facts, so that the
caller converts the rendered HTML instead. The facts, each checked per render:

* a data chunk whose only visible content is values is still visible (blocks only add line breaks
  before visible text);
* a link whose label or URL contains values gets the same ``label (URL)`` treatment;
* no value contains NUL (the line-break marker).

Templates where values could change the markup's structure are not derived at all: a value in a tag or
attribute name, in an unquoted or ``style`` attribute, inside ``<pre>``, right after ``<`` or an
unfinished character reference (``&amp`` + value), or right before ``>``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html import unescape

__all__ = ["TextShape", "derive", "html_to_text"]

# A small regex tokenizer instead of html.parser.HTMLParser (same stdlib entity decoding, several times
# faster). Linear in the HTML, whatever it holds (templates are untrusted): possessive quantifiers leave
# nothing to backtrack into (``(?:[^>]+)*`` was exponential on ``<a xxxx...`` without ``>``), and a tag,
# declaration or quoted attribute value never spans a ``<``, so a start that fails stops at the next one
# (a raw ``<`` inside an attribute value makes that tag text; write ``&lt;``).
_TOKEN = re.compile(
    r"<(?:!--.*?(?:-->|\Z)|!\[CDATA\[.*?(?:\]\]>|\Z)|[!?][^<>]*+>"
    r"|(?P<close>/?)(?P<tag>[a-zA-Z][^\s/<>]*+)(?P<attrs>(?:[^<>\"']++|\"[^<\"]*+\"|'[^<']*+')*+)>)",
    re.DOTALL,
)
_ATTR = re.compile(r"""([^\s=/>"']+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+)))?""")
_HIDDEN_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)
_RAW_END = {"script": re.compile(r"</script\s*>", re.IGNORECASE), "style": re.compile(r"</style\s*>", re.I)}
_SKIPPED = frozenset({"head", "title", "template", "noscript", "svg"})
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)
_PARAGRAPHS = frozenset({"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "blockquote", "pre", "hr"})
_LINES = frozenset(
    {"div", "tr", "td", "th", "table", "section", "article", "header", "footer", "center", "address", "dl"}
    | {"dt", "dd", "form", "nav", "main", "aside", "figure", "figcaption", "tbody", "thead", "tfoot", "body"}
)
# Line structure: block boundaries only *request* newlines (1 for a line, 2 for a paragraph, each <br>
# adds one, never more than 2); they are written as markers just before the next visible text, so runs of
# nested blocks collapse and there are no leading or trailing blank lines. Source newlines are whitespace.
_NEWLINE = "\x00"


def _attributes(raw: str) -> dict[str, str]:
    return {
        m.group(1).lower(): unescape(m.group(2) or m.group(3) or m.group(4) or "")
        for m in _ATTR.finditer(raw)
    }


def _is_hidden(raw_attrs: str) -> bool:
    lowered = raw_attrs.lower()
    if "hidden" not in lowered and "display" not in lowered:
        return False
    attrs = _attributes(raw_attrs)
    return "hidden" in attrs or bool(_HIDDEN_STYLE.search(attrs.get("style", "")))


def _link_suffix(label: str, href: str) -> str:
    """What follows a link's label: `` (URL)``, the URL alone (no label), or nothing (the label is the URL,
    or the URL is a fragment or script)."""
    href = href.strip()
    if not href or href.startswith(("#", "javascript:")) or label in (href, href.removeprefix("mailto:")):
        return ""
    return f" ({href})" if label else href


def _normalise(raw: str) -> str:
    text = " ".join(raw.split())  # the marker is not whitespace: it survives
    text = text.replace(" " + _NEWLINE, _NEWLINE).replace(_NEWLINE + " ", _NEWLINE)
    return text.replace(_NEWLINE, "\n").strip()


class _TextBuilder:
    def __init__(self) -> None:
        self.out: list[str] = []
        self._newlines = 0  # requested before the next text
        self._started = False
        self._skip_tag = ""  # the element whose content is being dropped, and how deeply it is nested
        self._skip_depth = 0
        self._links: list[tuple[str, int]] = []  # (href, index in out where the label starts)
        self._pre = 0

    def start(self, tag: str, raw_attrs: str) -> None:
        if self._skip_depth:
            self._skip_depth += tag == self._skip_tag and tag not in _VOID
        elif tag in _SKIPPED or _is_hidden(raw_attrs):
            if tag not in _VOID:
                self._skip_tag, self._skip_depth = tag, 1
        elif tag == "br":
            self._newlines = min(self._newlines + 1, 2)
        elif tag == "li":
            self._break(1)
            self._text("- ")
        elif tag == "a":
            self._links.append((_attributes(raw_attrs).get("href", ""), len(self.out)))
        elif tag in _PARAGRAPHS:
            self._pre += tag == "pre"
            self._break(2)
        elif tag in _LINES:
            self._break(1)

    def end(self, tag: str) -> None:
        if self._skip_depth:
            self._skip_depth -= tag == self._skip_tag
        elif tag == "a" and self._links:
            self._close_link(*self._links.pop())
        elif tag in _PARAGRAPHS:
            self._pre -= tag == "pre" and self._pre > 0
            self._break(2)
        elif tag in _LINES or tag == "li":
            self._break(1)

    def _break(self, newlines: int) -> None:
        self._newlines = max(self._newlines, newlines)

    def _text(self, text: str) -> None:
        if self._newlines:
            if self._started:
                self.out.append(_NEWLINE * self._newlines)
            self._newlines = 0
        self._started = True
        self.out.append(text)

    def _close_link(self, href: str, start: int) -> None:
        suffix = _link_suffix(" ".join("".join(self.out[start:]).split()), href)
        if suffix:
            self.out.append(suffix)

    def data(self, text: str) -> None:
        if self._skip_depth or not text:
            return
        if "&" in text:
            text = unescape(text)
        if self._pre:
            self._text(text.replace("\n", _NEWLINE))
        elif text.isspace():
            self.out.append(" ")
        else:
            self._text(text)


def _walk(html: str, builder: _TextBuilder) -> None:
    pos = 0
    for match in _TOKEN.finditer(html):
        if match.start() < pos:
            continue  # inside a script/style body that was jumped over
        builder.data(html[pos : match.start()])
        pos = match.end()
        tag = match.group("tag")
        if tag is None:
            continue  # comment, doctype, CDATA, processing instruction
        tag = tag.lower()
        if match.group("close"):
            builder.end(tag)
        elif tag in _RAW_END:
            end = _RAW_END[tag].search(html, pos)
            pos = end.end() if end else len(html)
        else:
            builder.start(tag, match.group("attrs"))
    builder.data(html[pos:])


def html_to_text(html: str) -> str:
    """Readable plain text from HTML.

    Head, style, script and hidden elements (``hidden``, ``display:none``) are dropped, blocks go on their
    own lines, list items become ``- item``, links become ``label (URL)`` (just the URL when the label is
    the URL), entities are decoded and whitespace is collapsed.
    """
    if _NEWLINE in html:
        html = html.replace(_NEWLINE, "")
    builder = _TextBuilder()
    _walk(html, builder)
    return _normalise("".join(builder.out))


# ------------------------------------------------------------------------------------------- derivation

_OPEN, _CLOSE = "\ue001", "\ue002"  # private-use characters around a hole's number
_HOLE = re.compile("\ue001(\\d+)\ue002")
# Where a value could merge with the markup around it: after "<" (a tag, comment or end tag would start),
# after an unfinished character reference, and before ">" (which could end a comment or CDATA section).
# Linear: ``[^\s<>]`` stops a scan at the next ``<`` (the last ``<`` before a hole finds it just the same).
_UNSAFE = re.compile(r"<[^\s<>]*+\ue001|&[#A-Za-z0-9]*+\ue001|\ue002[\-\]]*+>")

_Pieces = tuple[str | int, ...]  # literal text and hole numbers


class _Unsafe(Exception):
    pass


def _pieces(text: str) -> _Pieces:
    parts = _HOLE.split(text)
    return tuple(int(part) if index % 2 else part for index, part in enumerate(parts) if part or index % 2)


class _Filler:
    """Pieces with holes, filled in from a list of values."""

    __slots__ = ("chunks", "slots")

    def __init__(self, pieces: _Pieces) -> None:
        self.chunks = ["" if isinstance(piece, int) else piece for piece in pieces]
        self.slots = tuple((index, piece) for index, piece in enumerate(pieces) if isinstance(piece, int))

    def fill(self, values: Sequence[str]) -> str:
        chunks = self.chunks.copy()
        for index, hole in self.slots:
            chunks[index] = values[hole]
        return "".join(chunks)


class TextShape:
    """The text of an HTML template with holes for its values; see the module docstring."""

    __slots__ = ("_links", "_text", "links", "pieces", "visible")

    def __init__(
        self,
        pieces: _Pieces,
        visible: Sequence[tuple[int, ...]],
        links: Sequence[tuple[_Pieces, _Pieces, _Pieces]],
    ) -> None:
        self.pieces = pieces
        self.visible = tuple(visible)  # holes of which at least one must be visible text
        self.links = tuple(links)  # (label, href, suffix) of the links with holes
        self._text = _Filler(pieces)
        self._links = tuple((_Filler(label), _Filler(href), _Filler(suffix)) for label, href, suffix in links)

    def text(self, values: Sequence[str]) -> str | None:
        """``html_to_text`` of the rendered HTML, given each hole's value as plain text; None if a value
        breaks an assumption of the derivation (then convert the rendered HTML)."""
        for value in values:
            if _NEWLINE in value:
                return None
        for holes in self.visible:
            if not any(values[hole].strip() for hole in holes):
                return None
        for label, href, suffix in self._links:
            found = _link_suffix(" ".join(label.fill(values).split()), href.fill(values))
            if found != suffix.fill(values):
                return None
        return _normalise(self._text.fill(values))


class _Deriving(_TextBuilder):
    def __init__(self) -> None:
        super().__init__()
        self.visible: list[tuple[int, ...]] = []
        self.holed_links: list[tuple[_Pieces, _Pieces, _Pieces]] = []

    def start(self, tag: str, raw_attrs: str) -> None:
        if _OPEN in tag:
            raise _Unsafe
        if _OPEN in raw_attrs:
            for match in _ATTR.finditer(raw_attrs):
                name, quoted = match.group(1), (match.group(2) or "") + (match.group(3) or "")
                if (
                    _OPEN in name
                    or _OPEN in (match.group(4) or "")
                    or (name.lower() == "style" and _OPEN in quoted)
                ):
                    raise _Unsafe
        super().start(tag, raw_attrs)

    def end(self, tag: str) -> None:
        if _OPEN in tag:
            raise _Unsafe
        super().end(tag)

    def data(self, text: str) -> None:
        if _OPEN in text and not self._skip_depth:
            if self._pre:
                raise _Unsafe
            static = _HOLE.sub("", unescape(text))
            if not static or static.isspace():
                self.visible.append(tuple(int(hole) for hole in _HOLE.findall(text)))
        super().data(text)

    def _close_link(self, href: str, start: int) -> None:
        label, before = "".join(self.out[start:]), len(self.out)
        super()._close_link(href, start)
        if _OPEN in label or _OPEN in href:
            self.holed_links.append((_pieces(label), _pieces(href), _pieces("".join(self.out[before:]))))


def derive(parts: Sequence[str | int]) -> TextShape | None:
    """The `TextShape` of HTML given as literal chunks and hole numbers (one number per distinct value), or
    None if the values could alter how the HTML converts."""
    literal = "".join(part for part in parts if isinstance(part, str))
    if _OPEN in literal or _CLOSE in literal:
        return None
    html = "".join(part if isinstance(part, str) else f"{_OPEN}{part}{_CLOSE}" for part in parts)
    html = html.replace(_NEWLINE, "")
    if _UNSAFE.search(html):
        return None
    builder = _Deriving()
    try:
        _walk(html, builder)
    except _Unsafe:
        return None
    return TextShape(_pieces("".join(builder.out)), tuple(builder.visible), tuple(builder.holed_links))
