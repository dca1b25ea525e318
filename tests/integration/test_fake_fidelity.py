"""The fake's stream format is checked with the official openai SDK: if it parses, it is faithful."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import openai
import pytest

from bot.minitoolai import (
    ChatMessage,
    ChatParams,
    MiniToolAIClient,
    StreamEnd,
    TextDelta,
    Usage,
)
from tests.fakes.minitoolai import ChatScript, FakeMiniToolAI

TOKENS = ["Hello", ", ", "wörld", " 🙂", "\n", '"quoted" \\ back', "\t", "end."]


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeMiniToolAI]:
    # httpx2 (under the SDK) must not route loopback through a proxy.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    async with FakeMiniToolAI() as server:
        yield server


async def sdk_answer(fake: FakeMiniToolAI, text: str) -> tuple[str, Usage | None, str | None]:
    client = openai.AsyncOpenAI(base_url=f"{fake.base_url}/v1", api_key=fake.api_key, max_retries=0)
    parts: list[str] = []
    usage: Usage | None = None
    finish: str | None = None
    try:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": text}],
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.choices:
                parts.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage is not None:
                cached = chunk.usage.prompt_tokens_details
                usage = Usage(
                    chunk.usage.prompt_tokens,
                    chunk.usage.completion_tokens,
                    cached.cached_tokens or 0 if cached else 0,
                )
    finally:
        await client.close()
    return "".join(parts), usage, finish


async def our_answer(fake: FakeMiniToolAI, text: str) -> tuple[str, Usage | None, str | None]:
    async with aiohttp.ClientSession() as session:
        client = MiniToolAIClient(session, base_url=fake.base_url, api_key=fake.api_key)
        parts: list[str] = []
        end: StreamEnd | None = None
        async for event in client.stream_chat([ChatMessage("user", text)], ChatParams("gpt-4o-mini")):
            if isinstance(event, TextDelta):
                parts.append(event.text)
            else:
                end = event
    assert end is not None
    return "".join(parts), end.usage, end.finish_reason


async def test_sdk_and_our_client_read_the_same_scripted_answer(fake: FakeMiniToolAI) -> None:
    """Text with escapes and multi-byte characters, usage and finish reason agree."""
    for _ in range(2):
        fake.chat_scripts.append(ChatScript(tokens=TOKENS, usage=Usage(21, 8, 3)))
    sdk = await sdk_answer(fake, "hi")
    ours = await our_answer(fake, "hi")
    assert sdk == ours == ("".join(TOKENS), Usage(21, 8, 3), "stop")


async def test_sdk_and_our_client_read_the_same_default_answer(fake: FakeMiniToolAI) -> None:
    """The unscripted echo answer and its computed usage parse identically."""
    sdk = await sdk_answer(fake, "Tell me about otters")
    ours = await our_answer(fake, "Tell me about otters")
    assert sdk == ours
    assert "otters" in sdk[0]
    assert sdk[1] is not None and sdk[1].completion_tokens > 0


async def test_sdk_request_reaches_the_fake_with_the_bearer_key(fake: FakeMiniToolAI) -> None:
    """The SDK's POST /v1/chat/completions is routed and authorised like ours."""
    await sdk_answer(fake, "ping")
    (request,) = fake.requests
    assert (request.path, request.headers["Authorization"]) == (
        "/v1/chat/completions",
        f"Bearer {fake.api_key}",
    )
    assert request.json["stream"] is True
