"""Markdown from the model, rendered as Telegram HTML that always parses.

The presenter hands over markdown-ish text, often half-written (streaming). Telegram refuses a
message whose HTML has an unclosed tag or a bare ``<``, ``>`` or ``&``, so the rendering is
balanced by construction: every tag is emitted together with its closing tag around an
already-rendered inner part, and every piece of source text is escaped. A delimiter without its
partner (``**bold`` while the model is still typing) simply stays literal text.

Supported: fenced code blocks (with language), inline code, bold, italic, strikethrough,
links (http, https, tg), headings (shown bold), bullet lists and block quotes.

Telegram's 4096-character limit counts the *visible* text (after entity parsing). The rendered
visible text is never longer than the markdown source (markers disappear, entities count as one
character), so the presenter's limit on the source keeps every message within Telegram's.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

from bot.display.text import find_fences

__all__ = ["to_html", "visible_length", "visible_text"]

# Code spans are cut out first (their content is literal), then restored after emphasis.
_CODE_SPAN = re.compile(r"(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_HOLE = "\x00{}\x01"
_HOLE_RE = re.compile("\x00(\\d+)\x01")

_Render = Callable[[re.Match[str]], str]

_LINK = re.compile(r"\[([^\]\n]+)\]\(((?:https?|tg)://[^\s)]+)\)")
_BOLD_STARS = re.compile(r"\*\*(?=\S)(.+?)(?<=\S)\*\*")
_BOLD_UNDERSCORES = re.compile(r"(?<!\w)__(?=\S)(.+?)(?<=\S)__(?!\w)")
_STRIKE = re.compile(r"~~(?=\S)(.+?)(?<=\S)~~")
_ITALIC_STAR = re.compile(r"(?<![\w*])\*(?=[^\s*])(.+?)(?<=[^\s*])\*(?![\w*])")
_ITALIC_UNDERSCORE = re.compile(r"(?<![\w_])_(?=[^\s_])(.+?)(?<=[^\s_])_(?![\w_])")

_HEADING = re.compile(r" {0,3}#{1,6}[ \t]+(.*?)[ \t]*#*[ \t]*")
_BULLET = re.compile(r"([ \t]*)[-*+][ \t]+(.*)")
_RULE = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*")
_QUOTE = re.compile(r" {0,3}>[ \t]?(.*)")
_LANGUAGE = re.compile(r"[A-Za-z0-9_+#.-]{1,32}")
_TAG = re.compile(r"<[^>]*>")


def to_html(markdown: str) -> str:
    """Telegram HTML for ``markdown``; balanced and escaped whatever the input."""
    # NUL and SOH mark the code-span holes below; they have no business in a chat message.
    text = markdown.replace("\x00", "").replace("\x01", "")
    out: list[str] = []
    pos = 0
    for fence in find_fences(text):
        out.append(_blocks(text[pos : fence.open_start]))
        body = text[fence.body_start : fence.close_start].removesuffix("\n")
        out.append(_pre(fence.opener.strip().lstrip(fence.run[0]).strip(), body))
        if text[fence.close_start : fence.close_end].endswith("\n"):
            out.append("\n")
        pos = fence.close_end
    out.append(_blocks(text[pos:]))
    return "".join(out)


def visible_text(rendered: str) -> str:
    """What Telegram shows for ``rendered`` HTML (tags dropped, entities decoded)."""
    return html.unescape(_TAG.sub("", rendered))


def visible_length(rendered: str) -> int:
    """Length of the visible text in UTF-16 code units, as Telegram counts it."""
    return len(visible_text(rendered).encode("utf-16-le")) // 2


# ---------------------------------------------------------------- blocks


def _pre(info: str, body: str) -> str:
    language = info.split()[0] if info.split() else ""
    code = _escape(body) or " "  # an empty <pre></pre> makes an empty entity; Telegram refuses those
    if _LANGUAGE.fullmatch(language):
        return f'<pre><code class="language-{language}">{code}</code></pre>'
    return f"<pre>{code}</pre>"


def _blocks(text: str) -> str:
    """Line-level markdown outside code fences: headings, bullets, rules, quotes."""
    if not text:
        return ""
    out: list[str] = []
    quoted: list[str] = []
    for line in text.split("\n"):
        quote = _QUOTE.fullmatch(line)
        if quote is not None:
            quoted.append(_line(quote.group(1)))
            continue
        if quoted:
            out.append(_blockquote(quoted))
            quoted = []
        out.append(_line(line))
    if quoted:
        out.append(_blockquote(quoted))
    return "\n".join(out)


def _blockquote(lines: list[str]) -> str:
    body = "\n".join(lines)
    return f"<blockquote>{body}</blockquote>" if body.strip() else body


def _line(line: str) -> str:
    heading = _HEADING.fullmatch(line)
    if heading is not None and heading.group(1):
        return f"<b>{_inline(heading.group(1))}</b>"
    if _RULE.fullmatch(line):
        return "———"
    bullet = _BULLET.fullmatch(line)
    if bullet is not None:
        return f"{bullet.group(1)}• {_inline(bullet.group(2))}"
    return _inline(line)


# ---------------------------------------------------------------- inline


def _inline(text: str) -> str:
    codes: list[str] = []

    def hole(match: re.Match[str]) -> str:
        content = match.group(2)
        if content.strip() and content.startswith(" ") and content.endswith(" "):
            content = content[1:-1]  # CommonMark strips one space each side
        codes.append(f"<code>{_escape(content)}</code>")
        return _HOLE.format(len(codes) - 1)

    rendered = _emphasis(_escape(_CODE_SPAN.sub(hole, text)))
    return _HOLE_RE.sub(lambda m: codes[int(m.group(1))], rendered)


def _link(match: re.Match[str]) -> str:
    url = match.group(2).replace('"', "&quot;")
    return f'<a href="{url}">{_emphasis(match.group(1))}</a>'


def _wrap(tag: str) -> _Render:
    return lambda match: f"<{tag}>{_emphasis(match.group(1))}</{tag}>"


# Earlier patterns win ties at the same position (bold before italic for "**").
_PATTERNS: tuple[tuple[re.Pattern[str], _Render], ...] = (
    (_LINK, _link),
    (_BOLD_STARS, _wrap("b")),
    (_BOLD_UNDERSCORES, _wrap("b")),
    (_STRIKE, _wrap("s")),
    (_ITALIC_STAR, _wrap("i")),
    (_ITALIC_UNDERSCORE, _wrap("i")),
)


def _emphasis(text: str) -> str:
    """Emphasis in already-escaped text: the leftmost match wins, its inside rendered recursively."""
    if not any(c in text for c in "*_~["):
        return text
    out: list[str] = []
    pos = 0
    found: list[re.Match[str] | None] = [p.search(text) for p, _ in _PATTERNS]
    while True:
        best = -1
        for index, match in enumerate(found):
            if match is not None and (best < 0 or match.start() < found[best].start()):  # type: ignore[union-attr]
                best = index
        if best < 0:
            break
        match = found[best]
        assert match is not None
        out.append(text[pos : match.start()])
        out.append(_PATTERNS[best][1](match))
        pos = match.end()
        # Only patterns whose next match began inside the consumed part need searching again.
        for index, other in enumerate(found):
            if other is not None and other.start() < pos:
                found[index] = _PATTERNS[index][0].search(text, pos)
    out.append(text[pos:])
    return "".join(out)


def _escape(text: str) -> str:
    return html.escape(text, quote=False)
