"""The SSE decoder and chunk parser: any split of the byte stream gives the same events."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import AuthenticationError, InvalidRequest, RateLimited, ServiceUnavailable
from bot.minitoolai.sse import ChunkParser, SSEDecoder, parse_stream
from bot.minitoolai.types import StreamEnd, TextDelta, Usage
from tests.fakes.minitoolai import ChunkEncoder

MODEL = "gpt-4o-mini-2024-07-18"
USAGE = {
    "prompt_tokens": 17,
    "completion_tokens": 3,
    "total_tokens": 20,
    "prompt_tokens_details": {"cached_tokens": 5, "audio_tokens": 0},
}


def encode(tokens: list[str], *, usage: bool = True, done: bool = True) -> bytes:
    encoder = ChunkEncoder(MODEL)
    parts = [encoder.content(t) for t in tokens] + [encoder.finish("stop")]
    if usage:
        parts.append(encoder.usage(USAGE))
    if done:
        parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


def expected(tokens: list[str], *, usage: bool = True) -> list[object]:
    end = StreamEnd("stop", Usage(17, 3, 5) if usage else None, MODEL)
    return [TextDelta(t) for t in tokens if t] + [end]


# Plain first token (lets the parser learn its fast template), then anything at all:
# multi-byte characters, quotes, backslashes, newlines, control characters, emoji.
tokens_st = st.lists(st.text(min_size=0, max_size=8), max_size=12).map(lambda t: ["Hi", *t])


def with_line_ends(stream: bytes, eol: bytes, noise: bool) -> bytes:
    # Content JSON has no raw newlines, so every b"\n" is a line end.
    if noise:
        stream = stream.replace(b"data: ", b": keep-alive\nevent: message\nid: 7\nretry: 1000\ndata: ")
    return stream.replace(b"\n", eol)


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted({p % (len(data) + 1) for p in points}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


@given(
    tokens=tokens_st,
    eol=st.sampled_from([b"\n", b"\r\n", b"\r"]),
    noise=st.booleans(),
    points=st.lists(st.integers(min_value=0), max_size=40),
)
def test_every_split_of_the_stream_gives_the_same_events(
    tokens: list[str], eol: bytes, noise: bool, points: list[int]
) -> None:
    """Cutting the bytes anywhere (inside UTF-8 characters, CRLF pairs, lines) changes nothing."""
    data = with_line_ends(encode(tokens), eol, noise)
    assert parse_stream(cut(data, points)) == expected(tokens)


@given(tokens=tokens_st)
def test_byte_by_byte_reads_give_the_same_events(tokens: list[str]) -> None:
    """The worst split, one byte per read, still decodes every delta and the usage."""
    data = encode(tokens)
    assert parse_stream([data[i : i + 1] for i in range(len(data))]) == expected(tokens)


@given(tokens=tokens_st)
def test_fast_path_text_equals_json_loads(tokens: list[str]) -> None:
    """Whatever the parser returns per chunk is exactly what json.loads finds in it."""
    parser = ChunkParser()
    encoder = ChunkEncoder(MODEL)
    for token in tokens:
        payload = encoder.content(token).decode()[len("data: ") : -2]
        truth = json.loads(payload)["choices"][0]["delta"]["content"]
        assert parser.parse(payload) == (truth or None)


def test_multi_line_data_is_joined_with_newlines() -> None:
    """Several data lines of one event form one payload joined by LF (SSE spec)."""
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\ndata:b\ndata\ndata:  c\n\n") == ["a\nb\n\n c"]


def test_comments_fields_and_bom_are_ignored() -> None:
    """Comment lines, event/id/retry fields and a leading BOM carry no data."""
    decoder = SSEDecoder()
    stream = b"\xef\xbb\xbf: hello\nevent: x\nid: 1\nretry: 5\nfoo: bar\n\ndata: ok\n\n"
    assert decoder.feed(stream) == ["ok"]


def test_event_without_a_blank_line_is_not_dispatched() -> None:
    """An event is only complete once its blank line arrives."""
    decoder = SSEDecoder()
    assert decoder.feed(b"data: first\n") == []
    assert decoder.feed(b"\n") == ["first"]


def test_invalid_utf8_is_replaced_not_fatal() -> None:
    """Broken UTF-8 in a payload becomes U+FFFD instead of crashing the stream."""
    assert SSEDecoder().feed(b"data: a\xffb\n\n") == ["a\ufffdb"]


def test_missing_usage_chunk_gives_stream_end_without_usage() -> None:
    """A stream that ends with [DONE] but no usage chunk reports usage=None."""
    assert parse_stream(encode(["a", "b"], usage=False)) == expected(["a", "b"], usage=False)


def test_no_done_means_no_stream_end() -> None:
    """Without [DONE] the stream is unfinished: no StreamEnd is produced."""
    events = parse_stream(encode(["a"], done=False))
    assert events == [TextDelta("a")]


def test_payloads_after_done_are_ignored() -> None:
    """[DONE] ends the stream; later chunks do not add text."""
    data = encode(["a"]) + ChunkEncoder(MODEL).content("late")
    assert parse_stream(data) == expected(["a"])


def test_content_chunk_with_finish_reason_after_learning_keeps_finish_reason() -> None:
    """A chunk that differs from the learned template still goes through full parsing."""
    parser = ChunkParser()
    encoder = ChunkEncoder(MODEL)
    assert parser.parse(encoder.content("Hello").decode()[6:-2]) == "Hello"
    odd = encoder.content("bye").decode()[6:-2].replace('"finish_reason":null', '"finish_reason":"length"')
    assert parser.parse(odd) == "bye"
    assert parser.finish_reason == "length"


def test_spaced_json_is_parsed_too() -> None:
    """Chunks with whitespace after colons parse like compact ones."""
    payload = '{"model": "m", "choices": [{"index": 0, "delta": {"content": "x \\"y\\""}}]}'
    parser = ChunkParser()
    assert parser.parse(payload) == 'x "y"'
    assert parser.parse(payload) == 'x "y"'


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        ({"message": "slow down", "type": "rate_limit_exceeded"}, RateLimited),
        ({"message": "bad key", "code": "invalid_api_key"}, AuthenticationError),
        ({"message": "no model", "type": "invalid_request_error"}, InvalidRequest),
        ({"message": "boom", "type": "server_error"}, ServiceUnavailable),
        ("plain text error", ServiceUnavailable),
    ],
)
def test_error_chunk_raises_the_matching_error(error: object, kind: type[Exception]) -> None:
    """An ``error`` object inside a chunk raises the MiniToolAIError it describes."""
    payload = json.dumps({"error": error})
    with pytest.raises(kind) as caught:
        ChunkParser().parse(payload)
    assert type(caught.value) is kind


def test_non_json_chunk_is_a_service_error() -> None:
    """A payload that is not JSON is reported, not silently skipped."""
    with pytest.raises(ServiceUnavailable):
        ChunkParser().parse("{not json")
