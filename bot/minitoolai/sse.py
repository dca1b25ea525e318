"""Reading the chat stream: an incremental SSE decoder and a chunk parser.

Speed matters: a long answer is tens of thousands of chunks, so the decoder works on
whole reads with ``bytes.split`` (never byte by byte), and the chunk parser skips
``json.loads`` for ordinary content chunks once it has *proven* a chunk template for
the stream (see ``ChunkParser._learn``). Per-chunk cost does not depend on how long
the answer already is.
"""

from __future__ import annotations

import json
import json.decoder
import re
from collections.abc import Callable
from typing import Any

from bot.errors import (
    AuthenticationError,
    InvalidRequest,
    MiniToolAIError,
    PaymentRequired,
    RateLimited,
    ServiceUnavailable,
)
from bot.minitoolai.types import ChatEvent, StreamEnd, TextDelta, Usage

DONE = "[DONE]"
# The stdlib's (C) JSON string scanner; typeshed does not declare it.
scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_BOM = b"\xef\xbb\xbf"


class SSEDecoder:
    """Turns the bytes of a ``text/event-stream`` into the ``data`` of each event.

    Follows the WHATWG event-stream rules: CRLF, LF or CR line ends, ``:`` comments,
    ``field: value`` lines, multi-line ``data`` joined with newlines, dispatch on a
    blank line. Any split of the byte stream into reads gives the same payloads.
    """

    __slots__ = ("_data", "_pending", "_skip_lf", "_started")

    def __init__(self) -> None:
        self._pending = b""  # an incomplete last line
        self._data: list[bytes] = []  # data lines of the event being built
        self._skip_lf = False  # the last read ended in CR: a leading LF belongs to it
        self._started = False  # the first line (which may carry a BOM) was seen

    def feed(self, chunk: bytes) -> list[str]:
        """Add bytes; return the payloads of every event completed by them."""
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._skip_lf = chunk[-1:] == b"\r"
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._pending:
            chunk = self._pending + chunk
        lines = chunk.split(b"\n")
        self._pending = lines.pop()
        if not self._started and lines:
            self._started = True
            if lines[0].startswith(_BOM):
                lines[0] = lines[0][3:]
        return self._lines(lines)

    def _lines(self, lines: list[bytes]) -> list[str]:
        out: list[str] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    out.append(b"\n".join(data).decode("utf-8", "replace"))
                    data.clear()
            elif line[:5] == b"data:":
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line[:1] != b":":
                self._field(line)
        return out

    def _field(self, line: bytes) -> None:
        if line == b"data":  # "data" without a colon: an empty data line
            self._data.append(b"")
        # event, id and retry carry nothing the chat stream needs; unknown fields are
        # ignored as the SSE spec says.


# A JSON string body that json.loads would *not* return verbatim: quotes, escapes and
# (invalid) raw control characters. Their absence makes the raw text the decoded text.
_NEEDS_JSON = re.compile(r'["\\\x00-\x1f]')
_CONTENT_KEY = '"content":"'
_PROBE = "\u2603probe\u2603"
_MAX_LEARN_ATTEMPTS = 3


class ChunkParser:
    """Turns ``data`` payloads of one chat stream into answer text and a final ``StreamEnd``."""

    __slots__ = ("_attempts", "_prefix", "_suffix", "done", "finish_reason", "model", "usage")

    def __init__(self) -> None:
        self.done = False
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.model: str | None = None
        self._prefix: str | None = None
        self._suffix = ""
        self._attempts = 0

    def parse(self, payload: str) -> str | None:
        """Return the answer text in ``payload`` (None if it has none).

        Raises the matching ``MiniToolAIError`` when the chunk carries an ``error``.
        """
        prefix = self._prefix
        if (
            prefix is not None
            and payload.startswith(prefix)
            and payload.endswith(self._suffix)
            and len(payload) >= len(prefix) + len(self._suffix)
        ):
            # The proven template: the content string token runs from the quote that
            # ends ``prefix`` to the quote that starts ``suffix``.
            start, end = len(prefix), len(payload) - len(self._suffix)
            try:
                text, stop = scanstring(payload, start)
            except ValueError:
                pass  # not a valid string body: let json.loads raise with context
            else:
                if stop == end + 1:
                    return text or None
        if payload == DONE:
            self.done = True
            return None
        return self._parse_json(payload)

    def end(self) -> StreamEnd:
        return StreamEnd(finish_reason=self.finish_reason, usage=self.usage, model=self.model)

    def _parse_json(self, payload: str) -> str | None:
        try:
            chunk = json.loads(payload)
        except ValueError:
            raise ServiceUnavailable("The chat stream sent a chunk that is not JSON.", body=payload) from None
        if not isinstance(chunk, dict):
            raise ServiceUnavailable("The chat stream sent an unexpected chunk.", body=payload)
        if "error" in chunk:
            raise error_from_body(chunk["error"], payload)
        model = chunk.get("model")
        if isinstance(model, str):
            self.model = model
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = _usage(usage)
        text = self._choice(chunk.get("choices"))
        if text and self._prefix is None and self._attempts < _MAX_LEARN_ATTEMPTS:
            self._learn(payload, chunk, text)
        return text or None

    def _choice(self, choices: object) -> str | None:
        if not isinstance(choices, list) or not choices:
            return None
        choice = choices[0]
        if not isinstance(choice, dict):
            return None
        reason = choice.get("finish_reason")
        if isinstance(reason, str):
            self.finish_reason = reason
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            return None
        content = delta.get("content")
        if isinstance(content, str):
            return content
        refusal = delta.get("refusal")  # a refusal is the answer the user should see
        return refusal if isinstance(refusal, str) else None

    def _learn(self, payload: str, chunk: dict[str, Any], text: str) -> None:
        """Prove that ``prefix + S + suffix`` parses as this chunk with content S.

        If the content token is exactly ``"<probe>"`` once the probe replaces the text,
        the prefix ends with the token's opening quote and the suffix starts with its
        closing one; a left-to-right JSON lexer then reads any string body S in between
        as the content and everything else unchanged. Only chunks that do not change
        state (no finish_reason, no usage, plain content) qualify.
        """
        self._attempts += 1
        if _NEEDS_JSON.search(text) or _PROBE in payload:
            return
        start = payload.find(_CONTENT_KEY)
        if start < 0:
            return
        start += len(_CONTENT_KEY)
        end = start + len(text)
        if payload[start:end] != text or payload[end : end + 1] != '"':
            return
        prefix, suffix = payload[:start], payload[end:]
        try:
            probed = json.loads(prefix + _PROBE + suffix)
            choice = chunk["choices"][0]
            quiet = (
                len(chunk["choices"]) == 1
                and choice.get("finish_reason") is None
                and chunk.get("usage") is None
                and set(choice["delta"]) == {"content"}
            )
            choice["delta"]["content"] = _PROBE
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        if quiet and probed == chunk:
            self._prefix, self._suffix = prefix, suffix


def _usage(raw: dict[str, Any]) -> Usage:
    details = raw.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Usage(
        prompt_tokens=_int(raw.get("prompt_tokens")),
        completion_tokens=_int(raw.get("completion_tokens")),
        cached_tokens=_int(cached),
    )


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def error_from_body(error: object, raw: str, status: int | None = None) -> MiniToolAIError:
    """Map an API ``error`` object (OpenAI style) to the matching exception."""
    message = ""
    kind = ""
    if isinstance(error, dict):
        message = str(error.get("message") or "")
        kind = f"{error.get('type') or ''} {error.get('code') or ''}".lower()
    elif error is not None:
        message = str(error)
    text = f"MiniToolAI error in the stream: {message or kind.strip() or 'no details'}"
    cls: type[MiniToolAIError] = ServiceUnavailable
    if "rate_limit" in kind:
        cls = RateLimited
    elif "insufficient_quota" in kind or "billing" in kind or "payment" in kind:
        cls = PaymentRequired
    elif "auth" in kind or "api_key" in kind or "permission" in kind:
        cls = AuthenticationError
    elif "invalid_request" in kind or "not_found" in kind:
        cls = InvalidRequest
    return cls(text, status=status, body=raw)


def parse_stream(data: bytes | list[bytes]) -> list[ChatEvent]:
    """Decode a whole stream (given as one or more reads) into events; for tests and tools."""
    reads = [data] if isinstance(data, bytes) else data
    decoder = SSEDecoder()
    parser = ChunkParser()
    events: list[ChatEvent] = []
    for read in reads:
        for payload in decoder.feed(read):
            if parser.done:
                break
            text = parser.parse(payload)
            if text:
                events.append(TextDelta(text))
    if parser.done:
        events.append(parser.end())
    return events
