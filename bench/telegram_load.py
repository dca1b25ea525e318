"""Bench: many Telegram chats ask at once for a long answer, through the whole real bot.

    python bench/telegram_load.py [--private 150 --groups 50 --tokens 500 --rate 40] [--metrics]

The real composition root (``bot.__main__.serve``: python-telegram-bot's Application, the aiohttp
MiniToolAI client, SQLite) runs in this process against the fake Telegram Bot API and the fake
MiniToolAI, which run in a child process at Telegram's real limits (about one message a second
per chat, 20 a minute per group, 30 a second for the whole bot). Keeping the fakes in their own
process keeps their work off the bot's event loop and lets the CPU of each side be told apart.

Every private chat sends one message and every group one ``/ask`` at the same moment; each
answer is ``--tokens`` plain words (``w0 w1 ...``) streamed at ``--rate`` tokens a second.

Printed: 429s received, answers complete (every bot message of the chat joined equals the whole
answer), visible lag (for each token: from the fake MiniToolAI writing it to the first Telegram
request whose text shows the answer up to it: a draft, a new message or an edit), Bot API calls
per answer, CPU seconds (in all and per answer) and peak RSS of the bot process and of the fakes'
process. ``--metrics`` runs the bot with METRICS_LISTEN set (every recorder on, /metrics scraped
once a second as a busy Prometheus would): compare its CPU per answer with a run without.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextvars
import cProfile
import html
import logging
import multiprocessing
import pickle
import re
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from aiohttp import web

from tests.fakes.minitoolai import ChatScript, FakeMiniToolAI
from tests.fakes.telegram import FakeTelegram, RecordedRequest

TOKEN = "123456:BENCH-token"
SHOWING = frozenset({"sendMessage", "editMessageText", "sendMessageDraft"})  # requests that show text
FLOOD_COUNTED = frozenset(  # what the fake counts against its flood limits (drafts and actions are not)
    {"sendMessage", "editMessageText", "editMessageReplyMarkup", "sendPhoto", "sendDocument"}
)
_TAG = re.compile(r"<[^>]+>")
_WORD = re.compile(r"w(\d+)")
_QUESTION = re.compile(r"\bq(\d+)\b")
_stream_key: contextvars.ContextVar[int] = contextvars.ContextVar("stream_key", default=-1)

JSON = dict[str, Any]


# ------------------------------------------------------------------ the fakes' process


class TimedMiniToolAI(FakeMiniToolAI):
    """The fake MiniToolAI, noting when it writes each token of each chat's answer.

    The chat is the ``q<n>`` in the question; the stream's handler task carries it in a context
    variable down to the writes.
    """

    def __init__(self) -> None:
        super().__init__()
        self.token_times: dict[int, list[float]] = collections.defaultdict(list)

    async def _stream(
        self, request: web.Request, response: web.StreamResponse, body: JSON, script: ChatScript
    ) -> None:
        users = [m for m in body["messages"] if m.get("role") == "user"]
        found = _QUESTION.search(str(users[-1].get("content", ""))) if users else None
        _stream_key.set(int(found.group(1)) if found else -1)
        await super()._stream(request, response, body, script)

    async def _write_chunks(
        self, response: web.StreamResponse, chunks: list[bytes], script: ChatScript, *, paced: bool = True
    ) -> None:
        if not (paced and script.delay > 0):
            await super()._write_chunks(response, chunks, script, paced=paced)
            return
        times = self.token_times[_stream_key.get()]
        for chunk in chunks:
            await response.write(chunk)
            times.append(time.monotonic())
            await asyncio.sleep(script.delay)


@dataclass(frozen=True, slots=True)
class ChatFigures:
    """What one chat's answer looked like from Telegram's side."""

    complete: bool
    lags: list[float]
    unshown: int  # tokens no request ever showed
    first_shown: float  # seconds from the question to the first words shown (inf: never)
    calls: collections.Counter[str]
    private: bool


def plain(text: str) -> str:
    """The visible text of an HTML message."""
    return html.unescape(_TAG.sub("", text))


def last_word(text: str) -> int:
    """The index of the last ``w<i>`` word shown (-1 when none)."""
    found = _WORD.findall(plain(text))
    return max(map(int, found)) if found else -1


def chat_figures(
    chat_id: int,
    requests: list[RecordedRequest],
    arrivals: list[float],
    answer: str,
    final_texts: list[str],
    asked: float,
) -> ChatFigures:
    calls = collections.Counter(r.method for r in requests)
    shown = sorted(
        (r.at, last_word(str(r.params.get("text", "")))) for r in requests if r.ok and r.method in SHOWING
    )
    lags: list[float] = []
    seen = -1
    for at, last in shown:
        if last > seen:
            lags.extend(at - arrivals[i] for i in range(seen + 1, min(last + 1, len(arrivals))))
            seen = last
    complete = " ".join(final_texts).split() == answer.split()
    first = next((at - asked for at, last in shown if last >= 0), float("inf"))
    return ChatFigures(complete, lags, len(arrivals) - len(lags), first, calls, chat_id > 0)


_FINISHING = {"sendMessage", "editMessageText", "editMessageReplyMarkup"}


async def _wait_answered(tg: FakeTelegram, chats: set[int], deadline: float) -> set[int]:
    """Chats whose answer finished (the Regenerate button went on, with the final text or on its
    own), polled: this is a bench."""
    done: set[int] = set()
    cursor = 0
    while done != chats and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        new, cursor = tg.requests[cursor:], len(tg.requests)
        for r in new:
            if r.ok and r.method in _FINISHING and "regen" in str(r.params.get("reply_markup")):
                done.add(int(r.params["chat_id"]))
    return done


async def fakes_main(conn: Connection, args: argparse.Namespace) -> None:
    tokens = [f"w{i} " for i in range(args.tokens)]
    answer = "".join(tokens)
    ai = TimedMiniToolAI()
    late: list[float] = []
    monitor = asyncio.create_task(_loop_lateness(late), name="loop-lateness")
    async with ai, FakeTelegram(token=TOKEN, time_scale=1.0) as tg:
        for _ in range(args.private + args.groups):
            ai.chat_scripts.append(ChatScript(tokens=tokens, delay=1 / args.rate))
        conn.send({"ai": ai.base_url, "key": ai.api_key, "tg": tg.base_url, "files": tg.base_file_url})
        await tg.wait_until_polling(60)
        chats: dict[int, int] = {}  # chat id -> question number
        for n in range(args.private + args.groups):
            user = tg.user(f"User{n}", f"user{n}")
            if n < args.private:
                chat = tg.private_chat(user)
                tg.user_message(chat, user, f"Please write q{n}")
            else:
                chat = tg.group(f"Group {n}")
                tg.user_message(chat, user, f"/ask Please write q{n}")
            chats[int(chat["id"])] = n
        started = time.monotonic()
        done = await _wait_answered(tg, set(chats), started + args.timeout)
        wall = time.monotonic() - started
        by_chat: dict[int, list[RecordedRequest]] = collections.defaultdict(list)
        for r in tg.requests:
            if "chat_id" in r.params:
                by_chat[int(r.params["chat_id"])].append(r)
        figures = [
            chat_figures(
                chat_id,
                by_chat[chat_id],
                ai.token_times[n],
                answer,
                tg.messages_in(chat_id, from_bot=True),
                started,
            )
            for chat_id, n in chats.items()
        ]
        arrivals = [t for n in chats.values() for t in ai.token_times[n]]
        if args.dump:
            raw = {
                chat_id: (
                    [
                        (r.at, r.method, r.status, last_word(str(r.params.get("text", ""))))
                        for r in by_chat[chat_id]
                    ],
                    ai.token_times[n],
                )
                for chat_id, n in chats.items()
            }
            asked = [(r.at, str(r.json["messages"][-1]["content"])) for r in ai.requests]
            polls = [(r.at, r.status, len(r.result or [])) for r in tg.requests if r.method == "getUpdates"]
            dump = {"chats": raw, "started": started, "asked": asked, "polls": polls}
            await asyncio.to_thread(Path(args.dump).write_bytes, pickle.dumps(dump))
        conn.send(
            {
                "figures": figures,
                "answered": len(done),
                "wall": wall,
                "stream_seconds": statistics.median(
                    ai.token_times[n][-1] - ai.token_times[n][0] for n in chats.values() if ai.token_times[n]
                ),
                "tokens": len(arrivals),
                "chat_requests": len(ai.requests_to("/api/chat-completions/")),
                "violations": collections.Counter(v.limit for v in tg.violations),
                "status_429": sum(1 for r in tg.requests if r.status == 429),
                "peak_global": _peak_per_second([r.at for r in tg.requests if r.method in FLOOD_COUNTED]),
                "peak_drafts": _peak_per_second(
                    [r.at for r in tg.requests if r.method == "sendMessageDraft"]
                ),
                "cpu": time.process_time(),
                "fake_loop_late": late,
                "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
        # Until the bot has stopped (its last getUpdates still needs an answer): the fakes may go.
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
    monitor.cancel()


def _peak_per_second(times: list[float]) -> int:
    """The most requests in any one-second window."""
    times = sorted(times)
    peak = start = 0
    for end, at in enumerate(times):
        while times[start] <= at - 1.0:
            start += 1
        peak = max(peak, end - start + 1)
    return peak


def fakes_process(conn: Connection, args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(fakes_main(conn, args))


# ------------------------------------------------------------------ the bot's process


async def bot_main(conn: Connection, urls: JSON, database: Path, metrics: bool = False) -> JSON:
    from pydantic import SecretStr

    from bot.__main__ import serve
    from bot.settings import Settings

    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        minitoolai_api_key=urls["key"],
        minitoolai_base_url=urls["ai"],
        telegram_token=SecretStr(TOKEN),
        telegram_api_base_url=urls["tg"],
        telegram_file_base_url=urls["files"],
        database_url=f"sqlite:///{database}",
        starting_grant_usd=Decimal(5),
        log_level="WARNING",
        metrics_listen="127.0.0.1:9108" if metrics else "",
    )
    stop = asyncio.Event()
    late: list[float] = []
    monitor = asyncio.create_task(_loop_lateness(late), name="loop-lateness")
    bot = asyncio.create_task(serve(settings, stop), name="bot")
    scraped: list[str] = []
    scraper = (
        asyncio.create_task(_scrape(settings.metrics_listen, scraped), name="scrape") if metrics else None
    )
    results = asyncio.get_running_loop().run_in_executor(None, conn.recv)
    done, _ = await asyncio.wait({bot, results}, return_when=asyncio.FIRST_COMPLETED)
    if bot in done:
        bot.result()
        raise SystemExit("the bot stopped before the bench ended")
    if scraper is not None:
        scraper.cancel()
        await _scrape_once(settings.metrics_listen, scraped)  # the totals of the whole run
    stop.set()
    await bot
    monitor.cancel()
    figures: JSON = results.result()
    figures["loop_late"] = late
    figures["metrics_text"] = scraped[-1] if scraped else ""
    return figures


async def _loop_lateness(late: list[float], every: float = 0.05) -> None:
    """How late the bot's event loop wakes a timer: near zero unless the loop is busy."""
    while True:
        due = time.monotonic() + every
        await asyncio.sleep(every)
        late.append(time.monotonic() - due)


async def _scrape(listen: str, into: list[str], every: float = 1.0) -> None:
    """Read /metrics now and then, as Prometheus would (its cost is part of what --metrics measures)."""
    while True:
        await asyncio.sleep(every)
        await _scrape_once(listen, into)


async def _scrape_once(listen: str, into: list[str]) -> None:
    try:
        async with aiohttp.ClientSession() as http, http.get(f"http://{listen}/metrics") as response:
            into.append(await response.text())
    except aiohttp.ClientError:
        pass  # not listening yet


def recorder_cost(metrics_text: str, answers: int) -> str:
    """The recorders' own CPU per answer: how often the run called each kind (from its /metrics
    totals) times what one call costs, timed here with recording on (median of 5 runs; steadier
    on a busy machine than the difference of two whole runs)."""
    import contextvars
    import timeit

    from prometheus_client.parser import text_string_to_metric_families

    from bot.ops import context, metrics

    totals: collections.defaultdict[str, float] = collections.defaultdict(float)
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            if sample.name.endswith(("_total", "_count")):
                totals[sample.name] += sample.value
    ns = "minitoolai_bot_"
    calls = {
        "shown": totals[ns + "platform_messages_total"],
        "db_call": totals[ns + "db_call_seconds_count"],
        "answer": 2 * totals[ns + "answers_total"],  # the decorator's count, and model()
        "charged": 2 * totals[ns + "answers_total"],  # held at the reserve, charged at the settle
    }

    def timed() -> dict[str, float]:
        context.begin("telegram", claim=True)
        metrics.set_enabled(True)
        probes = {
            "shown": lambda: metrics.shown("edit", 0.2),
            "db_call": lambda: metrics.db_call("settle", 0.001),
            "answer": lambda: metrics.model("gpt-4o-mini"),
            "charged": lambda: metrics.charged("chat", "gpt-4o-mini", 100, tokens=(10, 20)),
        }
        return {
            name: statistics.median(timeit.repeat(probe, number=20_000, repeat=5)) / 20_000
            for name, probe in probes.items()
        }

    cost = contextvars.copy_context().run(timed)
    per_answer = sum(calls[name] * cost[name] for name in calls) / answers
    detail = ", ".join(f"{name} {calls[name] / answers:.0f}x{cost[name] * 1e6:.1f} µs" for name in calls)
    return f"{per_answer * 1e6:.0f} µs ({detail})"


def _limit_sessions(limit: int) -> None:
    """Give every aiohttp session made without a connector one with ``limit`` connections.

    Only for ``--pool-limit``: the bot's own session gets aiohttp's default connector, whose 100
    connections hold the 101st concurrent answer back until one of the first hundred ends.
    """
    original = aiohttp.ClientSession.__init__

    def init(self: aiohttp.ClientSession, *args: Any, **kwargs: Any) -> None:
        if kwargs.get("connector") is None:
            kwargs["connector"] = aiohttp.TCPConnector(limit=limit)
        original(self, *args, **kwargs)

    aiohttp.ClientSession.__init__ = init  # type: ignore[method-assign]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def report(args: argparse.Namespace, got: JSON, bot_cpu: float, bot_rss: float) -> None:
    figures: list[ChatFigures] = got["figures"]
    lags = [lag for f in figures for lag in f.lags]
    groups = [lag for f in figures if not f.private for lag in f.lags]
    private = [lag for f in figures if f.private for lag in f.lags]
    calls: collections.Counter[str] = collections.Counter()
    for f in figures:
        calls.update(f.calls)
    answers = len(figures)
    violations = got["violations"]

    def row(name: str, value: str, target: str = "") -> None:
        print(f"{name:<34}{value:<44}{target}")

    def lag_line(values: list[float]) -> str:
        if not values:
            return "-"
        return f"median {statistics.median(values):.2f} s, p95 {pct(values, 0.95):.2f} s, max {max(values):.2f} s"

    row("chats", f"{args.private} private + {args.groups} groups, all asking at once")
    row(
        "answer",
        f"{args.tokens} tokens at {args.rate:g}/s (streamed in {got['stream_seconds']:.1f} s, median)",
    )
    row("fake limits", "1/s per chat, 20/min per group, 30/s bot-wide")
    row("", "sendMessageDraft and sendChatAction not flood-counted")
    print()
    row("figure", "measured", "target")
    row("429s received", f"{got['status_429']} {dict(violations) or ''}".rstrip(), "0")
    row(
        "answers complete",
        f"{sum(f.complete for f in figures)} / {answers} (finished: {got['answered']})",
        f"{answers}",
    )
    row("visible lag, all tokens", lag_line(lags), "median <= 1.0 s, p95 <= 3.5 s")
    row("  in private chats", lag_line(private))
    row("  in groups", lag_line(groups))
    firsts = [f.first_shown for f in figures]
    row("first words shown, from asking", lag_line(firsts))
    row("chat requests at MiniToolAI", f"{got['chat_requests']} for {answers} answers")
    row("tokens never shown before the end", f"{sum(f.unshown for f in figures)} of {got['tokens']}")
    row("Bot API calls per answer", f"{sum(calls.values()) / answers:.1f}")
    for method, count in sorted(calls.items(), key=lambda item: -item[1]):
        row(f"  {method}", f"{count / answers:.1f}")
    row("busiest second, flood-counted", f"{got['peak_global']} requests (drafts: {got['peak_drafts']})")
    late = got["loop_late"]
    row(
        "bot event loop lateness",
        f"median {statistics.median(late) * 1000:.0f} ms, p95 {pct(late, 0.95) * 1000:.0f} ms, max {max(late) * 1000:.0f} ms",
    )
    late = got["fake_loop_late"]
    row(
        "fakes' event loop lateness",
        f"median {statistics.median(late) * 1000:.0f} ms, p95 {pct(late, 0.95) * 1000:.0f} ms, max {max(late) * 1000:.0f} ms",
    )
    row("wall time", f"{got['wall']:.1f} s until every answer finished")
    row("CPU, bot process", f"{bot_cpu:.1f} s ({bot_cpu / got['tokens'] * 1e6:.0f} µs per token)")
    row(
        "  per answer",
        f"{bot_cpu / answers * 1000:.1f} ms (metrics {'on' if args.metrics else 'off'})",
        "on: < 5 % above off",
    )
    if got.get("metrics_text"):
        row("  of which metrics recorders", recorder_cost(got["metrics_text"], answers))
    row("CPU, fakes' process", f"{got['cpu']:.1f} s")
    row("CPU, both", f"{bot_cpu + got['cpu']:.1f} s")
    row("peak RSS", f"bot {bot_rss:.0f} MB, fakes {got['rss_mb']:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--private", type=int, default=150, help="private chats")
    parser.add_argument("--groups", type=int, default=50, help="group chats")
    parser.add_argument("--tokens", type=int, default=500, help="tokens per answer")
    parser.add_argument("--rate", type=float, default=40.0, help="tokens per second per answer")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for every answer")
    parser.add_argument(
        "--pool-limit",
        type=int,
        metavar="N",
        help="connections the bot's HTTP session may open (0: no limit). Unset: aiohttp's default of 100,"
        " what the composition root uses. Set, it models a connector fix in bot/__main__.py",
    )
    parser.add_argument("--metrics", action="store_true", help="run with METRICS_LISTEN set (metrics on)")
    parser.add_argument("--dump", metavar="PATH", help="pickle every chat's requests and token times here")
    parser.add_argument("--profile", metavar="PATH", help="write a cProfile of the bot's process here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("telegram").setLevel(logging.WARNING)  # not the Application's start/stop lines

    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    fakes = context.Process(target=fakes_process, args=(theirs, args), name="fakes")
    fakes.start()
    urls = ours.recv()
    cpu0 = time.process_time()
    if args.pool_limit is not None:
        _limit_sessions(args.pool_limit)
    profiler = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory() as tmp:
        if profiler is not None:
            profiler.enable()
        got = asyncio.run(bot_main(ours, urls, Path(tmp) / "bot.sqlite3", args.metrics))
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)
    bot_cpu = time.process_time() - cpu0
    ours.send("stop")
    fakes.join(30)
    report(args, got, bot_cpu, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


if __name__ == "__main__":
    main()
