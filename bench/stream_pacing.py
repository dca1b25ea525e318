"""Bench: many concurrent streaming answers through StreamPresenter into paced surfaces.

    python bench/stream_pacing.py [--conversations 1000 --tokens 600 --rate 40 --interval 1.0]
                                  [--max-length 2000] [--source inproc|server]

Each conversation streams an answer of ``--tokens`` tokens at ``--rate`` tokens/s into its own
surface that allows one operation per ``--interval`` seconds (it records every call with
``time.monotonic``, the clock the presenter uses, and answers a too-early call with
PlatformRateLimited as a platform would). Tokens come either from an in-process schedule
(``inproc``: one task per conversation appending on absolute times) or from the fake MiniToolAI
server through the real client (``server``: HTTP + SSE on 127.0.0.1, so it measures that too).

Printed: operations and edits per answer, median/p95/max visible lag (token arrival -> the first
operation showing it), pacing violations, CPU seconds per 1,000 tokens (the whole process,
including the token source; ``inproc`` also reports the source's own cost from a baseline run
without presenters) and peak RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import resource
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.display.streaming import Outcome, PacingPolicy, StreamPresenter
from bot.errors import PlatformRateLimited


@dataclass(slots=True)
class BenchSurface:
    """A platform chat that allows ``burst`` calls then one per ``interval``; records what it saw."""

    interval: float
    burst: int
    max_length: int
    times: list[float] = field(default_factory=list)  # every send/edit/finish attempt
    shown: list[tuple[float, int]] = field(default_factory=list)  # (time, last token index visible)
    edits: int = 0
    sends: int = 0
    refused: int = 0
    too_long: int = 0
    _tokens: float = 0.0
    _stamp: float = 0.0

    def __post_init__(self) -> None:
        self._tokens = float(self.burst)
        self._stamp = time.monotonic()

    def _admit(self) -> float:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) / self.interval)
        self._stamp = now
        self.times.append(now)
        if self._tokens < 1 - 1e-6:
            self.refused += 1
            raise PlatformRateLimited((1 - self._tokens) * self.interval)
        self._tokens -= 1
        return now

    def _record(self, now: float, text: str) -> None:
        if len(text) > self.max_length:
            self.too_long += 1
        self.shown.append((now, _last_token(text)))

    async def send(self, text: str, *, final: bool) -> str:
        now = self._admit()
        self.sends += 1
        self._record(now, text)
        return str(self.sends)

    async def edit(self, handle: str, text: str, *, final: bool) -> None:
        now = self._admit()
        self.edits += 1
        self._record(now, text)

    async def finish(self, handles: Sequence[str], outcome: Outcome) -> None:
        self._admit()


def _last_token(text: str) -> int:
    """Index of the last whole token ``w<i> `` in ``text`` (-1 if none)."""
    end = len(text)
    while True:
        i = text.rfind("w", 0, end)
        if i < 0:
            return -1
        j = i + 1
        while j < len(text) and text[j].isdigit():
            j += 1
        if j > i + 1 and j < len(text) and text[j] == " ":
            return int(text[i + 1 : j])
        end = i


def violations(times: list[float], interval: float, burst: int) -> int:
    """Pairs of calls closer than a token bucket allows (1 µs tolerance)."""
    count = 0
    for i in range(len(times)):
        for j in range(i + burst, len(times)):
            if times[j] - times[i] < (j - i + 1 - burst) * interval - 1e-6:
                count += 1
    return count


# ------------------------------------------------------------------ token sources


async def inproc_conversation(
    n_tokens: int, rate: float, offset: float, sink: StreamPresenter | None, arrivals: list[float]
) -> None:
    start = time.monotonic() + offset
    for i in range(n_tokens):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        arrivals.append(time.monotonic())
        if sink is not None:
            sink.append(f"w{i} ")


async def run_inproc(
    args: argparse.Namespace, presenters: bool
) -> tuple[list[BenchSurface], list[list[float]]]:
    policy = PacingPolicy(args.interval, args.max_length, burst=args.burst)
    rng = random.Random(7)
    surfaces: list[BenchSurface] = []
    arrivals: list[list[float]] = []

    async def one() -> None:
        surface = BenchSurface(args.interval, args.burst, args.max_length)
        times: list[float] = []
        surfaces.append(surface)
        arrivals.append(times)
        offset = rng.random()  # start times spread over a second, like real traffic
        if not presenters:
            await inproc_conversation(args.tokens, args.rate, offset, None, times)
            return
        async with StreamPresenter(surface, policy) as presenter:
            await inproc_conversation(args.tokens, args.rate, offset, presenter, times)
            await presenter.finish()

    async with asyncio.TaskGroup() as group:
        for _ in range(args.conversations):
            group.create_task(one())
    return surfaces, arrivals


async def run_server(args: argparse.Namespace) -> tuple[list[BenchSurface], list[list[float]]]:
    import aiohttp

    from bot.minitoolai import MiniToolAIClient
    from bot.minitoolai.types import ChatMessage, ChatParams, TextDelta
    from tests.fakes.minitoolai import ChatScript, FakeMiniToolAI

    policy = PacingPolicy(args.interval, args.max_length, burst=args.burst)
    surfaces: list[BenchSurface] = []
    arrivals: list[list[float]] = []
    async with FakeMiniToolAI() as fake:
        for _ in range(args.conversations):
            fake.chat_scripts.append(
                ChatScript(tokens=[f"w{i} " for i in range(args.tokens)], delay=1 / args.rate)
            )
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector) as session:
            client = MiniToolAIClient(session, base_url=fake.base_url, api_key=fake.api_key)

            async def one() -> None:
                surface = BenchSurface(args.interval, args.burst, args.max_length)
                times: list[float] = []
                surfaces.append(surface)
                arrivals.append(times)
                stream = client.stream_chat([ChatMessage("user", "hi")], ChatParams("gpt-4o-mini"))
                async with StreamPresenter(surface, policy) as presenter:
                    async for event in stream:
                        if isinstance(event, TextDelta):
                            times.append(time.monotonic())
                            presenter.append(event.text)
                    await presenter.finish()

            async with asyncio.TaskGroup() as group:
                for _ in range(args.conversations):
                    group.create_task(one())
    return surfaces, arrivals


# ------------------------------------------------------------------ figures


def lags(surface: BenchSurface, times: list[float]) -> list[float]:
    """For each token, seconds from its arrival to the first operation showing it."""
    out: list[float] = []
    seen = -1
    for at, last in surface.shown:
        if last > seen:
            out.extend(at - times[i] for i in range(seen + 1, min(last + 1, len(times))))
            seen = last
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--tokens", type=int, default=600)
    parser.add_argument("--rate", type=float, default=40.0, help="tokens per second per answer")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between operations per chat")
    parser.add_argument("--burst", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=2000)
    parser.add_argument("--source", choices=["inproc", "server"], default="inproc")
    args = parser.parse_args()

    baseline_cpu = None
    if args.source == "inproc":
        cpu0 = time.process_time()
        asyncio.run(run_inproc(args, presenters=False))
        baseline_cpu = time.process_time() - cpu0
        gc.collect()

    wall0, cpu0 = time.monotonic(), time.process_time()
    if args.source == "inproc":
        surfaces, arrivals = asyncio.run(run_inproc(args, presenters=True))
    else:
        surfaces, arrivals = asyncio.run(run_server(args))
    cpu = time.process_time() - cpu0
    wall = time.monotonic() - wall0

    tokens = sum(len(a) for a in arrivals)
    all_lags = [lag for s, a in zip(surfaces, arrivals, strict=True) for lag in lags(s, a)]
    bad = sum(violations(s.times, args.interval, args.burst) for s in surfaces)
    per_k = cpu / (tokens / 1000)
    print(f"source                {args.source}")
    print(f"conversations         {len(surfaces)} x {args.tokens} tokens at {args.rate:g}/s")
    print(f"policy                1 op / {args.interval:g}s per chat, burst {args.burst}")
    print(f"max length            {args.max_length}")
    print(f"wall time             {wall:.1f} s")
    print(f"tokens                {tokens} (shown: {len(all_lags)})")
    print(f"edits per answer      {statistics.mean(s.edits for s in surfaces):.1f} (mean)")
    print(f"sends per answer      {statistics.mean(s.sends for s in surfaces):.2f} (mean)")
    print(
        f"visible lag           median {statistics.median(all_lags):.3f} s, p95 {pct(all_lags, 0.95):.3f} s,"
        f" max {max(all_lags):.3f} s"
    )
    print(f"lag / interval        {statistics.median(all_lags) / args.interval:.2f} (median)")
    print(f"pacing violations     {bad}")
    print(f"platform refusals     {sum(s.refused for s in surfaces)}")
    print(f"texts over the limit  {sum(s.too_long for s in surfaces)}")
    print(f"CPU                   {cpu:.2f} s in all, {per_k * 1000:.2f} ms per 1,000 tokens")
    if baseline_cpu is not None:
        source_k = baseline_cpu / (tokens / 1000)
        print(f"  token source alone  {baseline_cpu:.2f} s, {source_k * 1000:.2f} ms per 1,000 tokens")
        print(f"  presenters          {(per_k - source_k) * 1000:.2f} ms per 1,000 tokens")
    print(f"peak RSS              {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
