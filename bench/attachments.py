"""Bench: many conversations sending big pictures at once; memory, bytes upstream, database size.

    python bench/attachments.py [--conversations 200 --turns 10 --picture-mb 4 --distinct 20]
                                [--context-max-pictures 2] [--database sqlite|postgresql://...]

``--conversations`` conversations (one per chat) are asked at the same time; each sends
``--turns`` messages one after the other, every one carrying a ``--picture-mb`` MB photo (a
4000 x 3000 JPEG), as an adapter hands them to the core (``ChatRequest.files``). The whole real
path runs: ``ConversationService`` (pictures prepared with Pillow, at most two at a time, in worker
threads), ``CreditService``, ``MiniToolAIClient`` over aiohttp, and a real SQLite (or PostgreSQL)
store, against the fake MiniToolAI **in a child process** (so its recording of every request body is
not counted in this process's memory). The fake counts each picture's tokens as the API does.

The pictures are ``--distinct`` different photos made before the clock starts (in a child process
too), reused across conversations: making 2,000 different 4 MB photos would take longer than the
run. The store keeps each picture once by its content hash, so with few distinct photos the
database holds few pictures; the database size per kept picture is printed so the size for all
different photos can be read off: ``conversations x CONTEXT_MAX_PICTURES x bytes per picture``.

Printed (no pass/fail), beside the issue's targets:
  peak RSS               this process (``ru_maxrss``), and after the photos were loaded; target < 300 MB
  bytes upstream         per request, by turn: target independent of the conversation's length
  pictures per request   by turn (at most CONTEXT_MAX_PICTURES)
  database               file size, pictures kept, bytes per kept picture
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

import aiohttp
from aiohttp import web

import storage
from bot.chat.attachments import Upload
from bot.chat.conversations import ChatLimits, ChatRequest, ConversationService, View
from bot.chat.tokens import TokenCounter
from bot.credits import CreditPolicy, CreditService
from bot.display.streaming import PacingPolicy
from bot.minitoolai import MiniToolAIClient, PriceTable
from bot.ports import Account, Place
from bot.preferences import ChatDefaults, Preferences
from tests.fakes.minitoolai import FakeMiniToolAI

MB = 1024 * 1024
POLICY = PacingPolicy(min_interval=0.0, max_length=1_000_000, burst=1, typing_indicator="")


class NullSurface:
    """Shows nothing: the bench measures the core, not a platform."""

    def __init__(self) -> None:
        self._count = 0

    async def send(self, text: str, *, final: bool) -> str:
        self._count += 1
        return str(self._count)

    async def edit(self, handle: str, text: str, *, final: bool) -> None:
        return None

    async def finish(self, handles: Any, outcome: Any) -> None:
        return None


# ---------------------------------------------------------------- the fake, in a child process


class CountingFake(FakeMiniToolAI):
    """The fake MiniToolAI keeping only each request's size and picture count, not its body."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[tuple[int, int, int]] = []  # (body bytes, messages, pictures)

    async def _record(self, request: web.Request) -> Any:
        raw = await request.read()
        body = json.loads(raw)
        pictures = sum(
            1
            for m in body.get("messages", [])
            if isinstance(m.get("content"), list)
            for part in m["content"]
            if part.get("type") == "image_url"
        )
        self.sizes.append((len(raw), len(body.get("messages", [])), pictures))
        return body


def run_fake(conn: Connection) -> None:
    async def main() -> None:
        async with CountingFake() as fake:
            conn.send((fake.base_url, fake.api_key))
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, conn.recv)  # "stop"
            conn.send(fake.sizes)

    asyncio.run(main())


def make_photo(args: tuple[int, float]) -> bytes:
    """A 4000 x 3000 photo-like JPEG of about ``mb`` MB (quality found by halving)."""
    from tests.fakes.documents import make_jpeg

    seed, mb = args
    low, high, best = 50, 98, b""
    while low <= high:
        quality = (low + high) // 2
        data = make_jpeg(4000, 3000, seed=seed, quality=quality)
        best = data if not best or abs(len(data) - mb * MB) < abs(len(best) - mb * MB) else best
        if len(data) < mb * MB:
            low = quality + 1
        else:
            high = quality - 1
    return best


# ---------------------------------------------------------------- the bench


async def converse(
    chat: ConversationService, index: int, turns: int, photos: list[bytes], errors: list[str]
) -> None:
    user = Account("bench", f"u{index}")
    place = Place("bench", f"dm:u{index}", "c")
    for turn in range(turns):
        photo = photos[(index * 7 + turn) % len(photos)]
        request = ChatRequest(
            user, place, f"Turn {turn}: what changed?", files=(Upload(f"p{turn}.jpg", photo),)
        )
        try:
            await chat.answer(request, View(NullSurface(), POLICY))
        except Exception as exc:  # a failure is a figure too
            errors.append(f"{type(exc).__name__}: {exc}")


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def bench(args: argparse.Namespace, photos: list[bytes], base_url: str, api_key: str) -> dict[str, Any]:
    folder = tempfile.mkdtemp(prefix="bench-attach-")
    url = args.database or f"sqlite:///{folder}/bench.db"
    store = await storage.open_store(url)
    errors: list[str] = []
    try:
        async with aiohttp.ClientSession() as session:
            client = MiniToolAIClient(session, base_url=base_url, api_key=api_key)
            credits = CreditService(store, PriceTable(), CreditPolicy(starting_grant=10**12))
            defaults = ChatDefaults(
                model=args.model, system_prompt="Be brief.", temperature=None, image_model="dreamshaper"
            )
            prefs = Preferences(store, defaults, frozenset())
            limits = ChatLimits(context_max_pictures=args.context_max_pictures)
            chat = ConversationService(store, client, credits, prefs, TokenCounter(), limits)
            started = time.perf_counter()
            await asyncio.gather(
                *(converse(chat, i, args.turns, photos, errors) for i in range(args.conversations))
            )
            elapsed = time.perf_counter() - started
    finally:
        await store.close()
    db_bytes, pictures, picture_bytes = database_figures(url, folder)
    return {
        "elapsed": elapsed,
        "errors": errors,
        "db_bytes": db_bytes,
        "pictures": pictures,
        "picture_bytes": picture_bytes,
    }


def database_figures(url: str, folder: str) -> tuple[int, int, int]:
    if not url.startswith("sqlite:///"):
        return 0, 0, 0
    import sqlite3

    path = url.removeprefix("sqlite:///")
    size = sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    with sqlite3.connect(path) as conn:
        count, total = conn.execute("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM pictures").fetchone()
    return size, int(count), int(total)


def report(
    args: argparse.Namespace, figures: dict[str, Any], sizes: list[tuple[int, int, int]], baseline: float
) -> None:
    by_turn: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for body, messages, pictures in sizes:
        turn = (messages - 2) // 2  # developer + user, then a question and an answer per turn
        by_turn[turn].append((body, pictures))
    total = args.conversations * args.turns
    print(
        f"conversations {args.conversations} x turns {args.turns}, photos {args.picture_mb:g} MB "
        f"({args.distinct} distinct), model {args.model}, CONTEXT_MAX_PICTURES={args.context_max_pictures}"
    )
    print(f"requests upstream     {len(sizes)} of {total} asked; errors {len(figures['errors'])}")
    for error in sorted(set(figures["errors"]))[:5]:
        print(f"  e.g. {error}")
    print(
        f"elapsed               {figures['elapsed']:.1f} s ({len(sizes) / figures['elapsed']:.1f} answers/s; "
        "2 shared cores, other work running: noisy)"
    )
    print(
        f"peak RSS              {rss_mb():.0f} MB (after loading the photos: {baseline:.0f} MB); target < 300 MB"
    )
    print("bytes upstream per request, by turn (mean; pictures sent):")
    for turn in sorted(by_turn):
        rows = by_turn[turn]
        mean = statistics.fmean(b for b, _ in rows)
        pics = sorted({p for _, p in rows})
        print(f"  turn {turn + 1:2d}: {mean / 1024:8.0f} KB   pictures {pics}")
    print(
        f"database              {figures['db_bytes'] / MB:.1f} MB; {figures['pictures']} pictures kept, "
        f"{figures['picture_bytes'] / max(1, figures['pictures']) / 1024:.0f} KB each"
    )
    per = figures["picture_bytes"] / max(1, figures["pictures"])
    bound = args.conversations * args.context_max_pictures * per
    print(
        f"  with every photo different: at most {args.conversations} x {args.context_max_pictures} pictures "
        f"= {bound / MB:.0f} MB of pictures"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--picture-mb", type=float, default=4.0)
    parser.add_argument("--distinct", type=int, default=20)
    parser.add_argument("--context-max-pictures", type=int, default=2)
    parser.add_argument("--model", default="gpt-4o-mini")
    parser.add_argument("--database", default=None, help="a PostgreSQL URL (default: a new SQLite file)")
    args = parser.parse_args()

    spawn = multiprocessing.get_context("spawn")
    with spawn.Pool(2) as pool:
        photos = pool.map(make_photo, [(seed, args.picture_mb) for seed in range(args.distinct)])
    print(f"photos: {len(photos)} of {statistics.fmean(len(p) for p in photos) / MB:.1f} MB each")
    baseline = rss_mb()
    ours, theirs = spawn.Pipe()
    fake = spawn.Process(target=run_fake, args=(theirs,), daemon=True)
    fake.start()
    base_url, api_key = ours.recv()
    try:
        figures = asyncio.run(bench(args, photos, base_url, api_key))
    finally:
        ours.send("stop")
        sizes = ours.recv()
        fake.join(10)
    report(args, figures, sizes, baseline)


if __name__ == "__main__":
    main()
