"""Bench: many Discord channels asking at once, through the real bot and discord.py, against the fakes.

    python bench/discord_load.py [--channels 5 50 200] [--tokens 500 --rate 40] [--repeat 2]
                                 [--mode chat|mention|both] [--baseline raw|sdk|both|none]

For each of the ``--channels`` counts (``--repeat`` runs of each, on a busy machine), that many
users each ask in their own channel at the same moment (once the bot's start-up requests are a
second behind it, as in a running bot), either with ``/chat``
(interaction webhooks: outside Discord's global 50/s limit) or with a mention (channel messages:
inside it). Every answer is ``--tokens`` plain words (``w0 w1 …``) streamed by the fake MiniToolAI
at ``--rate`` tokens/s. The fake Discord enforces Discord's real limits: 5 message writes per 5 s
per channel (per interaction token for webhooks) and 50 requests/s per bot.

Three processes, so the bot's figures are the bot's alone: this one runs the fake Discord, a
second the fake MiniToolAI (it timestamps every token as it writes it), a third the bot. "ours"
is the real composition root ``bot.__main__.serve``; the baselines are a plain ``discord.Client``
streaming the same answers with the usual pattern (accumulate the text, ``await edit(text)`` at
most once a second, a new message past 2000 characters), reading the stream with our
``MiniToolAIClient`` ("raw") or the official ``openai`` SDK ("sdk").

Printed per bot and mode: 429s the fake gave, answers complete (the answer's messages joined
equal the whole answer), visible lag (a token's write by the fake -> the first Discord request
whose content shows it, median/p95/max over every token), REST calls per answer, the bot
process's CPU seconds from the first question to the last answer finished (per answer too),
its peak RSS, and the CPU ratio of ours to each baseline; and the first words (a question -> the
first Discord request showing any of its answer, median/p95 over the answers), next to the lag
in a closing summary of every run. Figures only, no pass/fail. ``BENCH_PROFILE=<folder>`` writes
the bot process's cProfile there (``BENCH_PROFILE_WINDOW=<seconds>``: only that long from the questions).

The floors Discord sets: an edit per second per channel puts the lag median near 0.5 s; for
mentions, 50 requests a second bot-wide put the 101st channel's first message (the median of 200)
in the third second at the earliest, and 200 channels' edits at one per 4 s each (lag about 2 s).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import multiprocessing
import os
import re
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("NO_PROXY", "127.0.0.1,localhost")

from aiohttp import web

from tests.fakes.discord import DiscordLimits, FakeDiscord
from tests.fakes.discord_models import FLAG_EPHEMERAL, FakeChannel, FakeInteraction, SentMessage
from tests.fakes.minitoolai import ChatScript, FakeMiniToolAI

LIMIT = 2000  # Discord's message length
NAIVE_INTERVAL = 1.0  # the baselines' "at most one edit per second"
SATURATED = 0.9  # a bot process busier than this share of one core cannot keep up
_PROMPT = re.compile(r"q(\d+)")
_TOKEN = re.compile(r"w(\d+)(?=\s|$)")


# ------------------------------------------------------------------ the fake MiniToolAI (own process)


class TimedMiniToolAI(FakeMiniToolAI):
    """The fake MiniToolAI, noting when it writes each token of the answer to prompt ``q<i>``."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: dict[int, list[float]] = {}
        self._keys: dict[int, int] = {}  # id(script) -> prompt number

    async def _stream(
        self, request: web.Request, response: web.StreamResponse, body: dict[str, Any], script: ChatScript
    ) -> None:
        users = [m for m in body["messages"] if m.get("role") == "user"]
        found = _PROMPT.search(str(users[-1].get("content")) if users else "")
        self._keys[id(script)] = int(found[1]) if found else -1
        await super()._stream(request, response, body, script)

    async def _write_chunks(
        self, response: web.StreamResponse, chunks: list[bytes], script: ChatScript, *, paced: bool = True
    ) -> None:
        if not (paced and script.delay > 0):
            await super()._write_chunks(response, chunks, script, paced=paced)
            return
        times = self.sent.setdefault(self._keys.get(id(script), -1), [])
        for chunk in chunks:
            times.append(time.monotonic())  # one clock for every process on this machine
            await response.write(chunk)
            await asyncio.sleep(script.delay)


def ai_process(conn: Connection, tokens: list[str], delay: float, count: int) -> None:
    asyncio.run(_ai_main(conn, tokens, delay, count))


async def _ai_main(conn: Connection, tokens: list[str], delay: float, count: int) -> None:
    ai = TimedMiniToolAI()
    async with ai:
        ai.chat_scripts.extend(ChatScript(tokens=list(tokens), delay=delay) for _ in range(count))
        conn.send((ai.base_url, ai.api_key))
        await _commands(conn).get()  # "collect"
        conn.send(ai.sent)


def _commands(conn: Connection) -> asyncio.Queue[str]:
    """Messages from the parent, read by a daemon thread (it never holds up the process's exit)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str] = asyncio.Queue()

    def read() -> None:
        while True:
            try:
                message = conn.recv()
            except EOFError:
                message = "stop"
            loop.call_soon_threadsafe(queue.put_nowait, message)
            if message == "stop":
                return

    threading.Thread(target=read, daemon=True).start()
    return queue


# ------------------------------------------------------------------ the bot (own process)


def bot_process(conn: Connection, kind: str, conf: dict[str, Any]) -> None:
    logging.basicConfig(level=logging.WARNING, format=f"[{kind}] %(levelname)s %(name)s: %(message)s")
    profile_dir = os.environ.get("BENCH_PROFILE")  # a folder: write <bot>-<pid>.prof there
    if not profile_dir:
        asyncio.run(_bot_main(kind, conf, conn))
        return
    window = float(os.environ.get("BENCH_PROFILE_WINDOW", "0"))
    if window > 0:  # only the first seconds after the questions: where first words are decided
        asyncio.run(_bot_main(kind, conf, conn, (window, f"{profile_dir}/{kind}-{os.getpid()}-first.prof")))
        return
    import cProfile

    with cProfile.Profile() as profile:
        asyncio.run(_bot_main(kind, conf, conn))
    profile.dump_stats(f"{profile_dir}/{kind}-{os.getpid()}.prof")


def _profile_for(seconds: float, path: str) -> None:
    import cProfile

    profile = cProfile.Profile()
    profile.enable()

    def done() -> None:
        profile.disable()
        profile.dump_stats(path)

    asyncio.get_running_loop().call_later(seconds, done)


def _usage() -> tuple[float, int]:
    used = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process (aiosqlite's too)
    return used.ru_utime + used.ru_stime, used.ru_maxrss


async def _bot_main(
    kind: str, conf: dict[str, Any], conn: Connection, window: tuple[float, str] | None = None
) -> None:
    stop = asyncio.Event()
    bot = asyncio.create_task(_ours(conf, stop) if kind == "ours" else _naive(conf, stop, kind))
    commands = _commands(conn)
    while True:
        command = asyncio.ensure_future(commands.get())
        await asyncio.wait({bot, command}, return_when=asyncio.FIRST_COMPLETED)
        if not command.done():
            command.cancel()
            conn.send(("died", repr(bot.exception()) if not bot.cancelled() else "cancelled"))
            return
        conn.send(("usage", _usage()))
        if window is not None and command.result() == "mark":  # the questions are about to go out
            _profile_for(*window)
            window = None
        if command.result() == "stop":
            break
    stop.set()
    await asyncio.wait_for(bot, 30)


async def _ours(conf: dict[str, Any], stop: asyncio.Event) -> None:
    from bot.__main__ import serve
    from bot.settings import Settings

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        minitoolai_api_key=conf["ai_key"],
        minitoolai_base_url=conf["ai_url"],
        discord_token=conf["token"],
        discord_api_base_url=conf["api_base"],
        discord_gateway_url=conf["gateway"],
        database_url=f"sqlite:///{conf['tmp']}/bot.sqlite3",
        starting_grant_usd=Decimal("5"),
        log_level="WARNING",
    )
    await serve(settings, stop)


# ------------------------------------------------------------------ the baselines


Deltas = Callable[[str], AsyncIterator[str]]


@dataclass(slots=True)
class NaiveAnswer:
    """The usual loop: keep the whole text, edit the message with it at most once a second."""

    send: Callable[[str], Awaitable[Any]]  # a new message -> its handle
    edit: Callable[[Any, str], Awaitable[None]]
    start: int = 0
    message: Any = None

    async def run(self, deltas: AsyncIterator[str]) -> None:
        text = ""
        last = 0.0
        async for delta in deltas:
            text += delta
            if time.monotonic() - last >= NAIVE_INTERVAL:
                await self.show(text)
                last = time.monotonic()
        await self.show(text)

    async def show(self, text: str) -> None:
        part = text[self.start :]
        while len(part) > LIMIT:
            cut = part.rfind(" ", 0, LIMIT) + 1 or LIMIT
            await self._put(part[:cut])
            self.message, self.start = None, self.start + cut
            part = text[self.start :]
        await self._put(part)

    async def _put(self, part: str) -> None:
        if self.message is None:
            self.message = await self.send(part)
        else:
            await self.edit(self.message, part)


async def _naive(conf: dict[str, Any], stop: asyncio.Event, kind: str) -> None:
    import aiohttp
    import discord
    import yarl
    from discord import app_commands

    discord.http.Route.BASE = conf["api_base"]
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(conf["gateway"])
    intents = discord.Intents.default()
    intents.message_content = True
    client = discord.Client(intents=intents, allowed_mentions=discord.AllowedMentions.none())
    tree = app_commands.CommandTree(client)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        deltas = _sdk_deltas(conf) if kind == "sdk" else _raw_deltas(conf, http)

        @tree.command(name="chat", description="Ask me something")
        async def chat(interaction: discord.Interaction, prompt: str) -> None:
            await interaction.response.defer(thinking=True)

            async def send(text: str) -> Any:
                if answer.message is None and answer.start == 0:
                    return await interaction.edit_original_response(content=text)
                return await interaction.followup.send(text, wait=True)

            async def edit(message: Any, text: str) -> None:
                await message.edit(content=text)

            answer = NaiveAnswer(send, edit)
            await answer.run(deltas(prompt))

        async def on_message(message: discord.Message) -> None:
            if client.user is None or client.user not in message.mentions or message.author.bot:
                return

            async def send(text: str) -> Any:
                if answer.start == 0:
                    return await message.reply(text)
                return await message.channel.send(text)

            async def edit(sent: Any, text: str) -> None:
                await sent.edit(content=text)

            answer = NaiveAnswer(send, edit)
            await answer.run(deltas(message.content))

        client.event(on_message)
        runner = asyncio.create_task(client.start(conf["token"]))
        await stop.wait()
        await client.close()
        await runner


def _raw_deltas(conf: dict[str, Any], http: Any) -> Deltas:
    from bot.minitoolai import ChatMessage, ChatParams, MiniToolAIClient, TextDelta

    client = MiniToolAIClient(http, base_url=conf["ai_url"], api_key=conf["ai_key"])

    async def deltas(prompt: str) -> AsyncIterator[str]:
        async for event in client.stream_chat([ChatMessage("user", prompt)], ChatParams("gpt-4o-mini")):
            if isinstance(event, TextDelta):
                yield event.text

    return deltas


def _sdk_deltas(conf: dict[str, Any]) -> Deltas:
    import openai

    client = openai.AsyncOpenAI(base_url=conf["ai_url"] + "/v1", api_key=conf["ai_key"], max_retries=0)

    async def deltas(prompt: str) -> AsyncIterator[str]:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": prompt}], stream=True
        )
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content

    return deltas


# ------------------------------------------------------------------ one run (this process: fake Discord)


@dataclass(slots=True)
class Figures:
    bot: str
    mode: str
    answers: int
    complete: int = 0
    limited: int = 0
    limited_global: int = 0
    lags: list[float] = field(default_factory=list)
    unshown: int = 0
    rest_calls: int = 0
    content_calls: int = 0
    cpu: float = 0.0
    rss_kb: int = 0
    wall: float = 0.0
    starts: list[float] = field(default_factory=list)  # question -> its first token written
    gaps: list[float] = field(default_factory=list)  # between one answer's requests showing text
    first_words: list[float] = field(default_factory=list)  # question -> its answer's first text shown


@dataclass(slots=True)
class World:
    dc: FakeDiscord
    channels: list[FakeChannel]
    interactions: dict[int, FakeInteraction] = field(default_factory=dict)
    asked: dict[int, float] = field(default_factory=dict)  # channel -> when its question was asked


def _spawn(target: Callable[..., None], *args: Any) -> tuple[multiprocessing.process.BaseProcess, Connection]:
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    process = ctx.Process(target=target, args=(theirs, *args))
    process.start()
    return process, ours


async def _recv(conn: Connection, timeout: float) -> Any:  # noqa: ASYNC109
    loop = asyncio.get_running_loop()
    ready = await loop.run_in_executor(None, conn.poll, timeout)
    if not ready:
        raise TimeoutError("no answer from a child process")
    return conn.recv()


async def run_once(bot: str, mode: str, channels: int, args: argparse.Namespace) -> Figures:
    tokens = [f"w{i} " for i in range(args.tokens)]
    figures = Figures(bot, mode, channels)
    ai, ai_conn = _spawn(ai_process, tokens, 1 / args.rate, channels)
    ai_url, ai_key = await _recv(ai_conn, 30)
    async with FakeDiscord(limits=DiscordLimits()) as dc:
        guild = dc.guild("Load")
        world = World(dc, [dc.text_channel(guild, f"c{i}") for i in range(channels)])
        users = [dc.user(f"u{i}") for i in range(channels)]
        with tempfile.TemporaryDirectory() as tmp:
            conf = {
                "ai_url": ai_url,
                "ai_key": ai_key,
                "token": dc.token,
                "api_base": dc.api_base,
                "gateway": dc.gateway_url,
                "tmp": tmp,
            }
            process, conn = _spawn(bot_process, bot, conf)
            try:
                await _ready(dc, process)
                await _quiet(dc)
                first_request = len(dc.requests)
                first_violation = len(dc.violations)
                cpu0 = (await _usage_of(conn))[0]
                wall0 = time.monotonic()
                await asyncio.gather(*(_ask(world, mode, i, users[i]) for i in range(channels)))
                deadline = wall0 + args.tokens / args.rate * 4 + 60
                # Polled: checking every answer at each of the fake's changes would cost more.
                while not _all_done(world, mode, tokens, bot) and time.monotonic() < deadline:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
                figures.wall = time.monotonic() - wall0
                figures.cpu, figures.rss_kb = await _usage_of(conn)
                figures.cpu -= cpu0
            finally:
                conn.send("stop")
                process.join(30)
                if process.is_alive():
                    process.kill()
        ai_conn.send("collect")
        sent: dict[int, list[float]] = await _recv(ai_conn, 30)
        ai.join(10)
        _measure(figures, world, mode, tokens, sent, dc.requests[first_request:], bot)
        figures.starts = [times[0] - wall0 for key, times in sent.items() if key >= 0 and times]
        violations = dc.violations[first_violation:]
        figures.limited = len(violations)
        figures.limited_global = sum(1 for v in violations if v.is_global)
    return figures


async def _usage_of(conn: Connection) -> tuple[float, int]:
    conn.send("mark")
    kind, value = await _recv(conn, 30)
    if kind != "usage":
        raise RuntimeError(f"the bot died: {value}")
    return float(value[0]), int(value[1])


async def _quiet(dc: FakeDiscord, seconds: float = 1.2) -> None:
    """Until the bot's start-up requests (command sync, ...) are a second behind it: a burst of
    questions then meets an idle bot, as it would in a running one, not one still starting."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        last = dc.requests[-1].at if dc.requests else 0.0
        if time.monotonic() - last >= seconds:
            return
        await asyncio.sleep(0.1)  # polled: the fake has no "idle" event


async def _ready(dc: FakeDiscord, process: multiprocessing.process.BaseProcess) -> None:
    """The bot's gateway session got READY and every GUILD_CREATE (as the e2e harness checks)."""
    ready_seq = 1 + len(dc.guilds)
    deadline = time.monotonic() + 60
    while not any(s.seq >= ready_seq and s.connection is not None for s in dc.gateway.sessions.values()):
        if not process.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the bot did not connect")
        await asyncio.sleep(0.05)


async def _ask(world: World, mode: str, i: int, user: Any) -> None:
    dc, channel = world.dc, world.channels[i]
    guild = dc.guilds[channel.guild_id or 0]
    world.asked[i] = time.monotonic()
    if mode == "chat":
        world.interactions[i] = await dc.slash_command(guild, channel, user, "chat", {"prompt": f"q{i}"})
    else:
        await dc.message_create(channel, user, f"<@{dc.bot_user.id}> q{i}", mentions=[dc.bot_user])


def _answer_messages(world: World, mode: str, i: int) -> list[SentMessage]:
    if mode == "chat":
        token = world.interactions[i].token
        found = [
            m for m in world.dc.messages if m.interaction_token == token and not m.flags & FLAG_EPHEMERAL
        ]
    else:
        found = world.dc.bot_messages(world.channels[i])
    return sorted((m for m in found if not m.deleted), key=lambda m: m.id)


def _normal(text: str) -> str:
    return " ".join(text.split())


def _complete(world: World, mode: str, i: int, whole: str, bot: str) -> bool:
    messages = _answer_messages(world, mode, i)
    if not messages or _normal(" ".join(m.content for m in messages)) != whole:
        return False
    # Ours is finished once the Regenerate button replaced Stop (that request counts too).
    return bot != "ours" or any("mtai:regen:" in str(m.components) for m in messages[:1])


def _all_done(world: World, mode: str, tokens: list[str], bot: str) -> bool:
    whole = _normal("".join(tokens))
    if mode == "chat" and len(world.interactions) < len(world.channels):
        return False
    return all(_complete(world, mode, i, whole, bot) for i in range(len(world.channels)))


def _measure(
    figures: Figures,
    world: World,
    mode: str,
    tokens: list[str],
    sent: dict[int, list[float]],
    requests: list[Any],
    bot: str,
) -> None:
    whole = _normal("".join(tokens))
    figures.rest_calls = len(requests)
    for i, channel in enumerate(world.channels):
        figures.complete += _complete(world, mode, i, whole, bot)
        if mode == "chat":
            token = world.interactions[i].token
            mine = [r for r in requests if token in r.path and r.method in ("PATCH", "POST")]
        else:
            prefix = f"/channels/{channel.id}/messages"
            mine = [r for r in requests if r.path.startswith(prefix) and r.method in ("PATCH", "POST")]
        shows = [r for r in mine if r.status < 300 and isinstance(r.body, dict) and r.body.get("content")]
        figures.content_calls += len(shows)
        times = sent.get(i, [])
        seen = -1
        shows.sort(key=lambda r: r.at)
        if shows:
            figures.first_words.append(shows[0].at - world.asked[i])
        figures.gaps.extend(b.at - a.at for a, b in itertools.pairwise(shows))
        for r in shows:
            last = max((int(m[1]) for m in _TOKEN.finditer(r.body["content"])), default=-1)
            for j in range(seen + 1, min(last + 1, len(times))):
                figures.lags.append(r.at - times[j])
            seen = max(seen, last)
        figures.unshown += max(0, len(times) - 1 - seen)


# ------------------------------------------------------------------ output


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def print_table(rows: list[Figures], args: argparse.Namespace) -> None:
    channels = rows[0].answers
    print(
        f"\n{channels} channels x {args.tokens} tokens at {args.rate:g} tokens/s; fake Discord: "
        "5 message writes / 5 s per channel (per interaction token), 50 requests/s per bot"
    )
    header = (
        f"{'bot':<6} {'mode':<8} {'429s':>9} {'complete':>9} {'lag med':>8} {'p95':>7} {'max':>7} "
        f"{'1st words':>9} {'p95':>6} {'REST/ans':>9} {'shows/ans':>9} {'CPU s':>7} {'CPU ms/ans':>10} "
        f"{'RSS MB':>7} {'wall s':>7} {'start med/max':>13}"
    )
    print(header)
    print("-" * len(header))
    for f in rows:
        lag = f.lags or [float("nan")]
        print(
            f"{f.bot:<6} {f.mode:<8} {f'{f.limited} ({f.limited_global}g)':>9} "
            f"{f'{f.complete}/{f.answers}':>9} {statistics.median(lag):>8.3f} {_pct(lag, 0.95):>7.3f} "
            f"{max(lag):>7.3f} {_pct(f.first_words, 0.5):>9.3f} {_pct(f.first_words, 0.95):>6.3f} "
            f"{f.rest_calls / f.answers:>9.1f} {f.content_calls / f.answers:>9.1f} "
            f"{f.cpu:>7.2f} {f.cpu / f.answers * 1000:>10.1f} {f.rss_kb / 1024:>7.0f} {f.wall:>7.1f} "
            f"{_pct(f.starts, 0.5):>6.2f}/{max(f.starts, default=float('nan')):<6.2f}"
        )
        print(f"       text shown every {_pct(f.gaps, 0.5):.3f} s (median), p95 {_pct(f.gaps, 0.95):.3f} s")
        if f.unshown:
            print(f"       ^ {f.unshown} tokens never shown")
        if f.wall > 0 and f.cpu / f.wall > SATURATED:
            print(
                f"       ^ used {f.cpu / f.wall:.0%} of a core: it fell behind (see its lag), so its "
                "CPU per answer is capped by the wall time and flatters it"
            )
    for mode in sorted({f.mode for f in rows}):
        ours = next((f for f in rows if f.mode == mode and f.bot == "ours"), None)
        for base in (f for f in rows if f.mode == mode and f.bot != "ours"):
            if ours is not None and base.cpu > 0:
                print(f"CPU ours / {base.bot} ({mode}): {ours.cpu / base.cpu:.2f}")


def print_summary(rows: list[Figures]) -> None:
    """One line per run: the figures the targets are about, for every channel count side by side."""
    print("\nsummary (one line per run)")
    header = (
        f"{'channels':>8} {'bot':<6} {'mode':<8} {'429s':>9} {'complete':>9} "
        f"{'lag med':>8} {'p95':>7} {'1st words med':>13} {'p95':>6} {'CPU s':>7}"
    )
    print(header)
    print("-" * len(header))
    for f in sorted(rows, key=lambda f: (f.answers, f.mode, f.bot)):
        lag = f.lags or [float("nan")]
        print(
            f"{f.answers:>8} {f.bot:<6} {f.mode:<8} {f'{f.limited} ({f.limited_global}g)':>9} "
            f"{f'{f.complete}/{f.answers}':>9} {statistics.median(lag):>8.3f} {_pct(lag, 0.95):>7.3f} "
            f"{_pct(f.first_words, 0.5):>13.3f} {_pct(f.first_words, 0.95):>6.3f} {f.cpu:>7.2f}"
        )
    print(
        "429s: the fake's own refusals (g: of them global). lag: token written by the fake MiniToolAI -> "
        "first Discord request showing it.\n1st words: the question -> the first Discord request "
        "showing any of its answer. REST/ans: every request in the load window per answer; "
        "shows/ans: those carrying answer text.\nCPU/RSS: the bot process only, first question to "
        "last answer finished. start: seconds from the questions to an answer's first token leaving "
        "the fake MiniToolAI."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--channels", type=int, nargs="+", default=[5, 50, 200])
    parser.add_argument("--tokens", type=int, default=500)
    parser.add_argument("--rate", type=float, default=40.0, help="tokens per second per answer")
    parser.add_argument("--mode", choices=["chat", "mention", "both"], default="both")
    parser.add_argument("--baseline", choices=["raw", "sdk", "both", "none"], default="both")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each configuration (noisy machines)")
    args = parser.parse_args()
    modes = ["chat", "mention"] if args.mode == "both" else [args.mode]
    baselines = {"both": ["raw", "sdk"], "none": []}.get(args.baseline, [args.baseline])
    everything: list[Figures] = []
    for channels in args.channels:
        for run in range(args.repeat):
            rows: list[Figures] = []
            for mode in modes:
                for bot in ["ours", *baselines]:
                    figures = asyncio.run(run_once(bot, mode, channels, args))
                    print(
                        f"done: {channels} channels, run {run + 1}: {bot} {mode}: "
                        f"{figures.complete}/{figures.answers} complete, {figures.limited} 429s, "
                        f"{figures.wall:.1f} s",
                        flush=True,
                    )
                    rows.append(figures)
            print_table(rows, args)
            everything.extend(rows)
    print_summary(everything)


if __name__ == "__main__":
    main()
