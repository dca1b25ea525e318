"""How fast a long streamed answer gets through our client, the openai SDK and a naive loop.

    python bench/sse_throughput.py [--chunks 20000] [--rounds 3]

Starts the fake MiniToolAI server in-process, streams the same answer (no delay)
through (1) ``MiniToolAIClient.stream_chat``, (2) the official ``openai`` SDK and
(3) a naive ``async for line in response.content`` + ``json.loads`` loop, and prints
chunks/s (best of ``--rounds``) and the ratios. It also prints the parse cost per chunk
(SSE decoder + chunk parser, no network) in the first and last quarter of the answer,
to show the cost does not grow with the answer's length.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

import aiohttp
import openai

from bot.minitoolai import (
    ChatMessage,
    ChatParams,
    ChunkParser,
    MiniToolAIClient,
    SSEDecoder,
    StreamEnd,
    TextDelta,
)
from tests.fakes.minitoolai import ChatScript, ChunkEncoder, FakeMiniToolAI

MODEL = "gpt-4o-mini"
MESSAGES = [ChatMessage("user", "Write a very long story.")]


def tokens(count: int) -> list[str]:
    # Realistic tokens: short words, some non-ASCII, some needing JSON escapes.
    words = [" the", " story", " continues", " «très»", " naïve", ' "quoted"', "\n", " 🙂"]
    return [words[i % len(words)] + (str(i) if i % 97 == 0 else "") for i in range(count)]


async def ours(fake: FakeMiniToolAI, session: aiohttp.ClientSession) -> tuple[int, str]:
    client = MiniToolAIClient(session, base_url=fake.base_url, api_key=fake.api_key)
    parts: list[str] = []
    params = ChatParams(MODEL, max_completion_tokens=16_000)
    async for event in client.stream_chat(MESSAGES, params):
        if isinstance(event, TextDelta):
            parts.append(event.text)
        elif isinstance(event, StreamEnd):
            assert event.usage is not None
    return len(parts), "".join(parts)


async def sdk(fake: FakeMiniToolAI, session: aiohttp.ClientSession) -> tuple[int, str]:
    client = openai.AsyncOpenAI(base_url=fake.base_url + "/v1", api_key=fake.api_key, max_retries=0)
    parts: list[str] = []
    try:
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": MESSAGES[0].text}],
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
    finally:
        await client.close()
    return len(parts), "".join(parts)


async def naive(fake: FakeMiniToolAI, session: aiohttp.ClientSession) -> tuple[int, str]:
    parts: list[str] = []
    body = {"model": MODEL, "messages": [m.to_wire() for m in MESSAGES], "stream": True}
    headers = {"Authorization": f"Bearer {fake.api_key}"}
    url = fake.base_url + "/api/chat-completions/"
    async with session.post(url, json=body, headers=headers) as response:
        async for line in response.content:
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                break
            chunk = json.loads(payload)
            if chunk["choices"]:
                text = chunk["choices"][0]["delta"].get("content")
                if text:
                    parts.append(text)
    return len(parts), "".join(parts)


Runner = Callable[[FakeMiniToolAI, aiohttp.ClientSession], Awaitable[tuple[int, str]]]


async def measure(
    name: str,
    run: Runner,
    fake: FakeMiniToolAI,
    session: aiohttp.ClientSession,
    *,
    answer: list[str],
    rounds: int,
) -> float:
    best = float("inf")
    expected = "".join(answer)
    for _ in range(rounds):
        fake.chat_scripts.append(ChatScript(tokens=answer))
        start = time.perf_counter()
        count, text = await run(fake, session)
        best = min(best, time.perf_counter() - start)
        assert count == len(answer), (name, count)
        assert text == expected, name
    rate = len(answer) / best
    print(f"{name:>6}: {rate:>10,.0f} chunks/s  ({best * 1000:.1f} ms for {len(answer)} chunks)")
    return rate


def quarter_costs(answer: list[str]) -> list[float]:
    """Microseconds per chunk to decode + parse each quarter of the encoded stream."""
    encoder = ChunkEncoder("gpt-4o-mini-2024-07-18")
    encoded = [encoder.content(token) for token in answer]
    quarter = len(encoded) // 4
    decoder, parser = SSEDecoder(), ChunkParser()
    quarters = []
    for q in range(4):
        data = b"".join(encoded[q * quarter : (q + 1) * quarter])
        quarters.append([data[i : i + 65536] for i in range(0, len(data), 65536)])
    best = [float("inf")] * 4
    # Rounds over all quarters in turn (the same parser state throughout), keeping each
    # quarter's best: machine noise then hits every quarter alike.
    for _ in range(7):
        for q, reads in enumerate(quarters):
            start = time.perf_counter()
            for read in reads:
                for payload in decoder.feed(read):
                    parser.parse(payload)
            best[q] = min(best[q], time.perf_counter() - start)
    costs = [b / quarter * 1e6 for b in best]
    return costs


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    answer = tokens(args.chunks)
    async with FakeMiniToolAI() as fake, aiohttp.ClientSession() as session:
        rate_ours = await measure("ours", ours, fake, session, answer=answer, rounds=args.rounds)
        rate_sdk = await measure("sdk", sdk, fake, session, answer=answer, rounds=args.rounds)
        rate_naive = await measure("naive", naive, fake, session, answer=answer, rounds=args.rounds)
    print(f"ours/sdk   = {rate_ours / rate_sdk:.1f}x")
    print(f"ours/naive = {rate_ours / rate_naive:.2f}x")
    long_answer = tokens(max(args.chunks, 100_000))
    costs = quarter_costs(long_answer)
    print(
        f"parse cost per chunk over a {len(long_answer)}-chunk answer: "
        f"first quarter {costs[0]:.2f} µs, last quarter {costs[3]:.2f} µs "
        f"(all quarters: {', '.join(f'{c:.2f}' for c in costs)})"
    )


if __name__ == "__main__":
    asyncio.run(main())
