"""Telegram's text rules, for the fake Bot API server in ``tests.fakes.telegram``.

Turns ``text`` + ``parse_mode`` (or explicit ``entities``) into the plain text and
``MessageEntity`` dicts Telegram would store, refusing what Telegram refuses: unknown or
badly nested HTML tags, unclosed tags, and (as the Bot API documentation demands) bare
``<``, ``>`` and ``&``. Entity offsets and lengths are in UTF-16 code units, as in the Bot API;
length limits count characters (code points) after parsing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = [
    "EntityParseError",
    "ParsedText",
    "UnsupportedParseModeError",
    "auto_entities",
    "parse_text",
    "utf16_len",
]

# The only named entities the Bot API accepts; all numeric ones are accepted too.
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_ENTITY_RE = re.compile(r"&(?:#(\d{1,7})|#[xX]([0-9a-fA-F]{1,6})|([a-zA-Z]{1,10}));")
_ATTR = r"[a-zA-Z][a-zA-Z0-9_-]*(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?"
_START_TAG_RE = re.compile(rf"<([a-zA-Z][a-zA-Z0-9-]*)((?:\s+{_ATTR})*)\s*>")
_END_TAG_RE = re.compile(r"</([a-zA-Z][a-zA-Z0-9-]*)\s*>")
_ATTR_RE = re.compile(r"([a-zA-Z][a-zA-Z0-9_-]*)(?:\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?")

# Tag name -> entity type, for the tags whose meaning needs no attribute.
_SIMPLE_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
}
_ATTRIBUTE_TAGS = {"span", "a", "blockquote", "tg-emoji"}

_MENTION_RE = re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{3,31}\b")
_COMMAND_RE = re.compile(r"(?<!\S)/[A-Za-z0-9_]{1,32}(?:@[A-Za-z][A-Za-z0-9_]{3,31})?(?![\w/])")


class EntityParseError(ValueError):
    """The text cannot be parsed in its parse mode (Telegram: "can't parse entities")."""


class UnsupportedParseModeError(ValueError):
    """A parse mode this fake does not implement; failing loudly beats accepting it silently."""


@dataclass(frozen=True, slots=True)
class ParsedText:
    """Plain text and entities as Telegram stores them after parsing and trimming."""

    text: str
    entities: tuple[dict[str, Any], ...] = ()


@dataclass(slots=True)
class _OpenTag:
    name: str
    attrs: dict[str, str]
    start: int  # UTF-16 offset in the output text
    language: str | None = None


def utf16_len(text: str) -> int:
    """Length of ``text`` in UTF-16 code units, the unit of Bot API entity offsets."""
    return len(text.encode("utf-16-le")) // 2


def parse_text(text: str, parse_mode: str | None, entities: list[dict[str, Any]] | None) -> ParsedText:
    """Parse ``text`` the way the Bot API does; explicit ``entities`` win over ``parse_mode``."""
    if entities is not None:
        return _trim(ParsedText(text, tuple(entities)))
    if not parse_mode:
        return _trim(ParsedText(text))
    if parse_mode.lower() == "html":
        return _trim(parse_html(text))
    raise UnsupportedParseModeError(f"the fake Telegram implements only HTML, not {parse_mode!r}")


def parse_html(source: str) -> ParsedText:
    """Parse Telegram's HTML subset into plain text and entities, or raise EntityParseError."""
    out: list[str] = []
    stack: list[_OpenTag] = []
    entities: list[dict[str, Any]] = []
    i = 0
    while i < len(source):
        char = source[i]
        if char == "&":
            decoded, i = _decode_entity(source, i)
            out.append(decoded)
        elif char == ">":
            raise EntityParseError(
                f"Character '>' is reserved and must be escaped as &gt; at byte offset "
                f"{_byte_offset(source, i)}"
            )
        elif char == "<":
            i = _handle_tag(source, i, out, stack, entities)
        else:
            out.append(char)
            i += 1
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    entities.sort(key=lambda entity: (entity["offset"], -entity["length"]))
    return ParsedText("".join(out), tuple(entities))


def auto_entities(text: str) -> list[dict[str, Any]]:
    """Entities Telegram adds to a user's plain message: @mentions and /commands."""
    found: list[dict[str, Any]] = []
    for kind, pattern in (("mention", _MENTION_RE), ("bot_command", _COMMAND_RE)):
        for match in pattern.finditer(text):
            found.append(
                {
                    "type": kind,
                    "offset": utf16_len(text[: match.start()]),
                    "length": utf16_len(match.group()),
                }
            )
    found.sort(key=lambda entity: entity["offset"])
    return found


def _byte_offset(source: str, index: int) -> int:
    # tdlib reports positions as UTF-8 byte offsets into the original text.
    return len(source[:index].encode())


def _decode_entity(source: str, i: int) -> tuple[str, int]:
    match = _ENTITY_RE.match(source, i)
    if match is None:
        raise EntityParseError(
            f"Character '&' is reserved and must be escaped as &amp; at byte offset {_byte_offset(source, i)}"
        )
    decimal, hexadecimal, name = match.groups()
    if name is not None:
        if name not in _NAMED_ENTITIES:
            raise EntityParseError(
                f'Unsupported HTML entity "&{name};" at byte offset {_byte_offset(source, i)}'
            )
        return _NAMED_ENTITIES[name], match.end()
    code = int(decimal) if decimal is not None else int(hexadecimal, 16)
    if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
        raise EntityParseError(f"Invalid character code at byte offset {_byte_offset(source, i)}")
    return chr(code), match.end()


def _handle_tag(
    source: str,
    i: int,
    out: list[str],
    stack: list[_OpenTag],
    entities: list[dict[str, Any]],
) -> int:
    offset = utf16_len("".join(out))
    end_match = _END_TAG_RE.match(source, i)
    if end_match is not None:
        _close_tag(source, i, end_match.group(1).lower(), offset, stack, entities)
        return end_match.end()
    start_match = _START_TAG_RE.match(source, i)
    if start_match is None:
        raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(source, i)}")
    name = start_match.group(1).lower()
    if name not in _SIMPLE_TAGS and name not in _ATTRIBUTE_TAGS:
        raise EntityParseError(f'Unsupported start tag "{name}" at byte offset {_byte_offset(source, i)}')
    attrs = _parse_attributes(start_match.group(2))
    _check_attributes(source, i, name, attrs)
    stack.append(_OpenTag(name=name, attrs=attrs, start=offset))
    return start_match.end()


def _parse_attributes(raw: str) -> dict[str, str]:
    attrs: dict[str, str] = {}
    for match in _ATTR_RE.finditer(raw):
        value = match.group(2) or ""
        if value[:1] in {'"', "'"}:
            value = value[1:-1]
        attrs[match.group(1).lower()] = _unescape_attribute(value)
    return attrs


def _unescape_attribute(value: str) -> str:
    def replace(match: re.Match[str]) -> str:
        decimal, hexadecimal, name = match.groups()
        if name is not None:
            return _NAMED_ENTITIES.get(name, match.group())
        return chr(int(decimal) if decimal is not None else int(hexadecimal, 16))

    return _ENTITY_RE.sub(replace, value)


def _check_attributes(source: str, i: int, name: str, attrs: dict[str, str]) -> None:
    where = f"at byte offset {_byte_offset(source, i)}"
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise EntityParseError(f'Tag "span" must have class "tg-spoiler" {where}')
    if name == "tg-emoji" and not attrs.get("emoji-id"):
        raise EntityParseError(f'Tag "tg-emoji" must have attribute "emoji-id" {where}')


def _close_tag(
    source: str,
    i: int,
    name: str,
    offset: int,
    stack: list[_OpenTag],
    entities: list[dict[str, Any]],
) -> None:
    where = f"at byte offset {_byte_offset(source, i)}"
    if not stack:
        raise EntityParseError(f"Unexpected end tag {where}")
    tag = stack.pop()
    if tag.name != name:
        raise EntityParseError(f'Unmatched end tag {where}, expected "</{tag.name}>", found "</{name}>"')
    language = tag.attrs.get("class", "").removeprefix("language-")
    if name == "code" and stack and stack[-1].name == "pre" and tag.attrs.get("class"):
        # <pre><code class="language-x"> is one pre entity with a language, not two entities.
        stack[-1].language = language
        return
    entity = _entity_for(tag, offset)
    if entity is not None:
        entities.append(entity)


def _entity_for(tag: _OpenTag, end: int) -> dict[str, Any] | None:
    length = end - tag.start
    if length <= 0:
        return None
    entity: dict[str, Any] = {"offset": tag.start, "length": length}
    if tag.name in _SIMPLE_TAGS:
        entity["type"] = _SIMPLE_TAGS[tag.name]
        if tag.name == "pre" and tag.language:
            entity["language"] = tag.language
    elif tag.name == "span":
        entity["type"] = "spoiler"
    elif tag.name == "a":
        href = tag.attrs.get("href", "")
        if not href:
            return None  # Telegram keeps the text and drops a link without a target.
        entity.update(type="text_link", url=href)
    elif tag.name == "blockquote":
        entity["type"] = "expandable_blockquote" if "expandable" in tag.attrs else "blockquote"
    else:
        entity.update(type="custom_emoji", custom_emoji_id=tag.attrs["emoji-id"])
    return entity


def _trim(parsed: ParsedText) -> ParsedText:
    """Strip leading and trailing whitespace as Telegram does, moving entities along."""
    text = parsed.text
    stripped_left = text.lstrip()
    left = utf16_len(text) - utf16_len(stripped_left)
    result = stripped_left.rstrip()
    total = utf16_len(result)
    entities: list[dict[str, Any]] = []
    for entity in parsed.entities:
        start = max(0, int(entity["offset"]) - left)
        end = min(total, int(entity["offset"]) + int(entity["length"]) - left)
        if end > start:
            entities.append({**entity, "offset": start, "length": end - start})
    return ParsedText(result, tuple(entities))
