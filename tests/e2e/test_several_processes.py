"""Several real ``python -m bot`` processes on one PostgreSQL database, against the fakes.

Webhook workers: one registers the webhook, every one answers. Money and jobs exactly once: a process starting while another streams leaves that answer's hold
alone; a process killed with kill -9 in the middle of an answer or of an image job has its hold
settled or released, and its job finished (polled, never submitted again), posted once and
charged once, by another process once its lease has expired.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import storage
from bot.minitoolai.prices import PriceTable
from bot.minitoolai.types import Usage
from bot.ports import Account, Reservation
from tests.e2e.processes import BotProcess, postgres_database, process_env
from tests.e2e.telegram_harness import SCALE, TOKEN, free_port
from tests.fakes.minitoolai import ChatScript, FakeMiniToolAI, ImageScript
from tests.fakes.telegram import FakeTelegram, RecordedRequest

pytestmark = pytest.mark.postgres

GRANT = Decimal(5)
GRANT_MICRO = int(GRANT * 1_000_000)
MODEL = "gpt-4o-mini"
SUBMIT_PATH = "/api/texttoimage/"
USAGE = Usage(prompt_tokens=40, completion_tokens=6)


@contextlib.asynccontextmanager
async def world(tmp_path: Path) -> AsyncIterator[tuple[FakeTelegram, FakeMiniToolAI, str, list[BotProcess]]]:
    """The fakes, an empty database, and the processes a test starts (all ended at the close)."""
    started: list[BotProcess] = []
    async with (
        postgres_database() as url,
        FakeMiniToolAI() as ai,
        FakeTelegram(token=TOKEN, time_scale=SCALE) as tg,
    ):
        try:
            yield tg, ai, url, started
        except Exception as exc:
            logs = "\n\n".join(f"--- {p.name}:\n{p.log}" for p in started)
            calls = [
                (r.method, str(r.params.get("text", ""))[:60])
                for r in tg.requests
                if r.method != "getUpdates"
            ]
            raise AssertionError(
                f"{exc!r}; Telegram calls {calls[-8:]}; the processes' logs:\n{logs}"
            ) from exc
        finally:
            for process in started:
                await process.close()


def telegram_env(tg: FakeTelegram, ai: FakeMiniToolAI, url: str) -> dict[str, str]:
    return process_env(
        url,
        MINITOOLAI_API_KEY=ai.api_key,
        MINITOOLAI_BASE_URL=ai.base_url,
        TELEGRAM_TOKEN=TOKEN,
        TELEGRAM_API_BASE_URL=tg.base_url,
        TELEGRAM_FILE_BASE_URL=tg.base_file_url,
        TELEGRAM_PACE_SCALE=str(SCALE),
        STARTING_GRANT_USD=str(GRANT),
        IMAGE_POLL_INITIAL_SECONDS="0.01",
        IMAGE_POLL_MAX_SECONDS="0.02",
        IMAGE_PROGRESS_INTERVAL_SECONDS="0",
    )


def console_env(ai: FakeMiniToolAI, url: str) -> dict[str, str]:
    """A process with no platform token: the terminal chat, which recovers and takes over like any."""
    return process_env(url, MINITOOLAI_API_KEY=ai.api_key, MINITOOLAI_BASE_URL=ai.base_url)


async def start(started: list[BotProcess], name: str, tmp_path: Path, env: dict[str, str]) -> BotProcess:
    folder = tmp_path / name
    folder.mkdir()
    process = await BotProcess.start(name, folder, env)
    started.append(process)
    await process.wait_for_line(r"bot: starting ")
    return process


def _in(chat_id: int, *methods: str) -> Any:
    def match(r: RecordedRequest) -> bool:
        return r.ok and r.method in methods and r.params.get("chat_id") == chat_id

    return match


async def reservations_of(url: str, account: Account) -> tuple[list[Reservation], list[Reservation], int]:
    """(settled, open, balance) of an account, read from the database."""
    store = await storage.open_store(url)
    try:
        settled = await store.settled_reservations(account, limit=100)
        still_open = [r for r in await store.open_reservations() if r.account == account]
        balance = await store.balance(account) or 0
    finally:
        await store.close()
    return settled, still_open, balance


async def test_a_process_started_while_another_streams_leaves_its_hold_alone(tmp_path: Path) -> None:
    """The regression: the second process's start-up recovery used to release the first's hold,
    which then settled to nothing (a free answer, and the hold spendable twice)."""
    async with world(tmp_path) as (tg, ai, url, started):
        alice = tg.user("Alice", "alice")
        chat = tg.private_chat(alice)
        go_on = asyncio.Event()
        tokens = ["Once ", "upon ", "a ", "time ", "there ", "was."]
        ai.chat_scripts.append(ChatScript(tokens=tokens, usage=USAGE, hold_after=2, hold_event=go_on))
        await start(started, "first", tmp_path, telegram_env(tg, ai, url))
        tg.user_message(chat, alice, "Tell me a story")
        await tg.wait_for(
            lambda r: (
                _in(chat["id"], "sendMessageDraft", "sendMessage")(r) and "Once" in str(r.params["text"])
            ),
            20,
        )

        second = await start(started, "second", tmp_path, console_env(ai, url))  # its recovery is done
        go_on.set()
        await tg.wait_for(
            lambda r: (
                _in(chat["id"], "sendMessage", "editMessageText", "editMessageReplyMarkup")(r)
                and "regen" in str(r.params.get("reply_markup"))
            ),
            20,
        )
        for process in started:
            assert 0 == await process.stop()
        settled, still_open, balance = await reservations_of(url, Account("telegram", str(alice["id"])))

    cost = PriceTable().chat_cost(MODEL, USAGE)
    assert [cost] == [r.charged for r in settled], [(r.charged, r.meta) for r in settled]
    assert [] == still_open
    assert GRANT_MICRO - cost == balance
    assert not any("took over" in line for line in second.lines), second.log
    assert "There was." not in tg.messages_in(chat["id"], from_bot=True)  # sanity: the fake streamed
    assert tg.messages_in(chat["id"], from_bot=True)[-1].endswith("there was.")


async def test_kill_9_mid_answer_the_hold_is_released_by_another_process(tmp_path: Path) -> None:
    """kill -9 while streaming: another process releases the hold once the lease expires (no usage
    was reported, so nothing is charged); the member's balance is whole again, nothing twice."""
    async with world(tmp_path) as (tg, ai, url, started):
        alice = tg.user("Alice", "alice")
        chat = tg.private_chat(alice)
        never = asyncio.Event()
        ai.chat_scripts.append(ChatScript(tokens=["Half ", "an ", "answer"], hold_after=1, hold_event=never))
        doomed = await start(started, "doomed", tmp_path, telegram_env(tg, ai, url))
        survivor = await start(started, "survivor", tmp_path, console_env(ai, url))
        tg.user_message(chat, alice, "Tell me a story")
        await tg.wait_for(
            lambda r: (
                _in(chat["id"], "sendMessageDraft", "sendMessage")(r) and "Half" in str(r.params["text"])
            ),
            20,
        )
        account = Account("telegram", str(alice["id"]))
        _, held, _ = await reservations_of(url, account)
        assert 1 == len(held)

        doomed.kill()
        await survivor.wait_for_line(r"took over 1 hold\(s\).*released=1")
        assert 0 == await survivor.stop()
        never.set()
        settled, still_open, balance = await reservations_of(url, account)

    assert ([], []) == (settled, still_open)
    assert GRANT_MICRO == balance


async def test_kill_9_mid_job_another_process_polls_it_posts_once_charges_once(tmp_path: Path) -> None:
    """kill -9 while the job runs upstream: the next process takes it over after the lease
    expires, polls the stored jobid (no second submit), posts the picture once, charges once."""
    async with world(tmp_path) as (tg, ai, url, started):
        alice = tg.user("Alice", "alice")
        chat = tg.private_chat(alice)
        script = ImageScript(pending_polls=1_000_000)
        ai.image_scripts.append(script)
        doomed = await start(started, "doomed", tmp_path, telegram_env(tg, ai, url))
        tg.user_message(chat, alice, "/imagine a fox")
        await tg.wait_for(
            lambda r: (
                _in(chat["id"], "sendMessage", "editMessageText")(r)
                and str(r.params.get("text", "")).startswith("Generating… ")
            ),
            20,
        )
        doomed.kill()
        await doomed.process.wait()
        script.pending_polls = 0  # it finishes upstream meanwhile
        mark = len(tg.requests)

        # Telegram allows one poller: the next process starts once the first is gone.
        successor = await start(started, "successor", tmp_path, telegram_env(tg, ai, url))
        # At its start if the lease has expired by then, else at a periodic takeover.
        await successor.wait_for_line(r"image job \w+ resumed \(submitted\)")
        await tg.wait_for(_in(chat["id"], "sendPhoto", "sendDocument"), 20, start=mark)
        await tg.wait_for(_in(chat["id"], "deleteMessage"), 20, start=mark)  # progress removed: done
        assert 0 == await successor.stop()
        settled, still_open, balance = await reservations_of(url, Account("telegram", str(alice["id"])))

    posted = [r for r in tg.requests if _in(chat["id"], "sendPhoto", "sendDocument")(r)]
    price = PriceTable().image_cost("dreamshaper")
    assert 1 == len(posted)
    assert 1 == len(ai.requests_to(SUBMIT_PATH)), "polled by the successor, never submitted again"
    assert [price] == [r.charged for r in settled]
    assert [] == still_open
    assert GRANT_MICRO - price == balance


async def test_webhook_workers_one_registers_every_one_answers(tmp_path: Path) -> None:
    """Two webhook workers with one secret: setWebhook is called once, by one of them, and each
    worker answers the posts Telegram sends it (here: one post to each, as a load balancer would)."""
    secret = "one-secret_for-all-workers"
    async with world(tmp_path) as (tg, ai, url, started):
        ports = [free_port(), free_port()]
        workers = []
        for index, port in enumerate(ports):
            env = telegram_env(tg, ai, url)
            env.update(
                TELEGRAM_WEBHOOK_URL="https://bot.example.com/telegram/hook",
                TELEGRAM_WEBHOOK_SECRET=secret,
                TELEGRAM_WEBHOOK_LISTEN=f"127.0.0.1:{port}",
            )
            worker = await start(started, f"worker{index}", tmp_path, env)
            await worker.wait_for_line(r"receiving updates by webhook")
            workers.append(worker)
        users = [tg.user(name, name.lower()) for name in ("Alice", "Bob")]
        chats = [tg.private_chat(user) for user in users]
        async with aiohttp.ClientSession() as http:
            for update_id, (port, chat, user) in enumerate(zip(ports, chats, users, strict=True), start=1):
                message = tg.user_message(chat, user, f"Hello worker on {port}")
                async with http.post(
                    f"http://127.0.0.1:{port}/telegram/hook",
                    json={"update_id": update_id, "message": message},
                    headers={"X-Telegram-Bot-Api-Secret-Token": secret},
                ) as response:
                    assert 200 == response.status
        for chat in chats:
            await tg.wait_for(
                lambda r, chat=chat: (
                    _in(chat["id"], "sendMessage", "editMessageText", "editMessageReplyMarkup")(r)
                    and "regen" in str(r.params.get("reply_markup"))
                ),
                20,
            )
        for process in started:
            assert 0 == await process.stop()

    assert 1 == len(tg.calls("setWebhook"))
    assert 1 == sum("another process registers the webhook" in w.log for w in workers)


@contextlib.asynccontextmanager
async def webhook_workers(
    tmp_path: Path, tg: FakeTelegram, ai: FakeMiniToolAI, url: str, started: list[BotProcess], count: int
) -> AsyncIterator[list[Any]]:
    """``count`` webhook workers; yields a ``post(message, kind="message")`` per worker, which sends
    the update to that worker as Telegram (behind a load balancer) would."""
    secret = "shared-secret_value"
    ports = [free_port() for _ in range(count)]
    for index, port in enumerate(ports):
        env = telegram_env(tg, ai, url)
        env.update(
            REDIS_URL=REDIS_URL,
            TELEGRAM_WEBHOOK_URL="https://bot.example.com/telegram/hook",
            TELEGRAM_WEBHOOK_SECRET=secret,
            TELEGRAM_WEBHOOK_LISTEN=f"127.0.0.1:{port}",
        )
        worker = await start(started, f"worker{index}", tmp_path, env)
        await worker.wait_for_line(r"receiving updates by webhook")
    async with aiohttp.ClientSession() as http:
        update_ids = iter(range(1, 1_000_000))

        def poster(port: int) -> Any:
            async def post(message: dict[str, Any], kind: str = "message") -> None:
                async with http.post(
                    f"http://127.0.0.1:{port}/telegram/hook",
                    json={"update_id": next(update_ids), kind: message},
                    headers={"X-Telegram-Bot-Api-Secret-Token": secret},
                ) as response:
                    assert 200 == response.status

            return post

        yield [poster(port) for port in ports]


async def test_stop_reaches_the_worker_writing_the_answer(tmp_path: Path) -> None:
    """/stop received by another worker than the one streaming: the answer stops there."""
    async with world(tmp_path) as (tg, ai, url, started):
        ai.chat_scripts.append(ChatScript(tokens=[f"slow{i} " for i in range(400)], delay=0.02))
        async with webhook_workers(tmp_path, tg, ai, url, started, 2) as post:
            alice = tg.user("Alice", "alice")
            chat = tg.private_chat(alice)
            await post[0](tg.user_message(chat, alice, "go on and on"))
            await tg.wait_for(lambda r: r.method == "sendMessageDraft" and r.ok, 20)
            await post[1](tg.user_message(chat, alice, "/stop"))
            await tg.wait_for(
                lambda r: (
                    _in(chat["id"], "sendMessage", "editMessageText")(r)
                    and "Stopped." in str(r.params.get("text", ""))
                ),
                20,
            )
            await ai.wait_cancelled(1)
            for process in started:
                assert 0 == await process.stop()
        texts = tg.messages_in(chat["id"], from_bot=True)
    assert texts[0].startswith("slow0 ") and texts[0].endswith("Stopped.")


async def test_one_answer_at_a_time_in_a_conversation_across_workers(tmp_path: Path) -> None:
    """Two messages of one conversation reach two workers: the second waits for the first answer
    and sees it in its history (never two answers at once from the same history)."""
    async with world(tmp_path) as (tg, ai, url, started):
        go_on = asyncio.Event()
        ai.chat_scripts.append(ChatScript(tokens=["First ", "answer."], hold_after=1, hold_event=go_on))
        ai.chat_scripts.append(ChatScript(tokens=["Second ", "answer."]))
        async with webhook_workers(tmp_path, tg, ai, url, started, 2) as post:
            alice = tg.user("Alice", "alice")
            chat = tg.private_chat(alice)
            await post[0](tg.user_message(chat, alice, "first question"))
            await tg.wait_for(lambda r: r.method == "sendMessageDraft" and r.ok, 20)
            await post[1](tg.user_message(chat, alice, "second question"))
            await started[1].wait_for_line(r"waiting for the answer another process is writing")
            go_on.set()
            await tg.wait_for(
                lambda r: (
                    _in(chat["id"], "sendMessage", "editMessageText")(r)
                    and "Second answer." in str(r.params.get("text", ""))
                ),
                20,
            )
            for process in started:
                assert 0 == await process.stop()
        requests = [r.json["messages"] for r in ai.requests_to("/api/chat-completions/")]
    assert 2 == len(requests)
    said = [(m["role"], m["content"]) for m in requests[1] if m["role"] in ("user", "assistant")]
    assert [
        ("user", "first question"),
        ("assistant", "First answer."),
        ("user", "second question"),
    ] == said


REDIS_URL = "redis://127.0.0.1:6379/3"  # this project's tests' Redis database


async def forget_shared_limits() -> None:
    """A clean slate for the bot's budgets in the test database (the fake Telegram is new too)."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(f"minitoolai:limit:telegram:{TOKEN.split(':')[0]}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def test_three_workers_share_a_groups_budget_through_redis(tmp_path: Path) -> None:
    """Three workers streaming answers into three topics of one forum at once: together they
    stay within the group's per-minute and per-chat limits (0 × 429), and every answer completes.
    Each worker alone would pace the group at the full budget: three would overrun it."""
    await forget_shared_limits()
    tokens = [f"w{i} " for i in range(40)]
    async with world(tmp_path) as (tg, ai, url, started):
        ai.chat_scripts.extend(ChatScript(tokens=tokens, delay=0.01) for _ in range(3))
        secret = "shared-secret_value"
        ports = [free_port() for _ in range(3)]
        for index, port in enumerate(ports):
            env = telegram_env(tg, ai, url)
            env.update(
                REDIS_URL=REDIS_URL,
                TELEGRAM_WEBHOOK_URL="https://bot.example.com/telegram/hook",
                TELEGRAM_WEBHOOK_SECRET=secret,
                TELEGRAM_WEBHOOK_LISTEN=f"127.0.0.1:{port}",
            )
            worker = await start(started, f"worker{index}", tmp_path, env)
            await worker.wait_for_line(r"receiving updates by webhook")
        forum = tg.forum("Team")
        alice = tg.user("Alice", "alice")
        topics = [tg.create_topic(forum, f"Topic {i}") for i in range(3)]
        async with aiohttp.ClientSession() as http:
            for update_id, (port, topic) in enumerate(zip(ports, topics, strict=True), start=1):
                message = tg.user_message(forum, alice, "@minitoolai_bot tell me", thread_id=topic)
                async with http.post(
                    f"http://127.0.0.1:{port}/telegram/hook",
                    json={"update_id": update_id, "message": message},
                    headers={"X-Telegram-Bot-Api-Secret-Token": secret},
                ) as response:
                    assert 200 == response.status
        for topic in topics:
            await tg.wait_for(
                lambda r, topic=topic: (
                    r.ok
                    and r.params.get("chat_id") == forum["id"]
                    and r.params.get("message_thread_id") in (topic, None)
                    and "regen" in str(r.params.get("reply_markup"))
                    and "w39" in str(r.params.get("text", "w39"))
                ),
                60,
            )
        for process in started:
            assert 0 == await process.stop()
        answers = [tg.messages_in(forum["id"], topic, from_bot=True) for topic in topics]

    assert [] == tg.violations, "a 429 from the fake Telegram"
    for texts in answers:
        assert "".join(tokens).strip() == " ".join(texts).strip()


async def test_regenerate_pressed_on_another_worker_answers_again(tmp_path: Path) -> None:
    """The Regenerate button of an answer written by one worker, pressed through another."""
    async with world(tmp_path) as (tg, ai, url, started):
        ai.chat_scripts.extend([ChatScript(tokens=["First try."]), ChatScript(tokens=["Second try."])])
        async with webhook_workers(tmp_path, tg, ai, url, started, 2) as post:
            alice = tg.user("Alice", "alice")
            chat = tg.private_chat(alice)

            def finished(start: int) -> Any:
                return tg.wait_for(
                    lambda r: (
                        _in(chat["id"], "sendMessage", "editMessageText", "editMessageReplyMarkup")(r)
                        and "regen" in str(r.params.get("reply_markup"))
                    ),
                    20,
                    start=start,
                )

            await post[0](tg.user_message(chat, alice, "A joke please"))
            done = await finished(0)
            mark = len(tg.requests)
            await post[1](tg.callback_query(alice, done.result, "regen"), "callback_query")
            await finished(mark)
            for process in started:
                assert 0 == await process.stop()
        bodies = [r.json["messages"] for r in ai.requests_to("/api/chat-completions/")]
        texts = tg.messages_in(chat["id"], from_bot=True)
    assert 2 == len(bodies)
    assert bodies[0] == bodies[1]
    assert ["First try.", "Second try."] == texts


async def test_three_workers_answer_chats_and_groups_with_an_exact_ledger(tmp_path: Path) -> None:
    """Three webhook workers behind a round robin, Redis sharing the budgets: every answer of six
    private chats and three groups completes, no 429, and each member is charged exactly the
    fake's reported usage, to the micro-dollar."""
    await forget_shared_limits()
    tokens = [f"w{i} " for i in range(30)]
    async with world(tmp_path) as (tg, ai, url, started):
        ai.chat_scripts.extend(ChatScript(tokens=tokens, delay=0.005, usage=USAGE) for _ in range(9))
        async with webhook_workers(tmp_path, tg, ai, url, started, 3) as post:
            users = [tg.user(f"User{i}", f"user{i}") for i in range(9)]
            chats = [tg.private_chat(user) for user in users[:6]] + [tg.group(f"Group {i}") for i in range(3)]
            for index, (user, chat) in enumerate(zip(users, chats, strict=True)):
                text = "Please write" if index < 6 else "/ask Please write"
                await post[index % 3](tg.user_message(chat, user, text))
            for chat in chats:
                await tg.wait_for(
                    lambda r, chat=chat: (
                        _in(chat["id"], "sendMessage", "editMessageText", "editMessageReplyMarkup")(r)
                        and "regen" in str(r.params.get("reply_markup"))
                    ),
                    60,
                )
            for process in started:
                assert 0 == await process.stop()
        answers = [" ".join(tg.messages_in(chat["id"], from_bot=True)).split() for chat in chats]
        ledgers = [await reservations_of(url, Account("telegram", str(user["id"]))) for user in users]

    cost = PriceTable().chat_cost(MODEL, USAGE)
    assert [] == tg.violations, "a 429 from the fake Telegram"
    assert all(words == "".join(tokens).split() for words in answers)
    assert [([cost], [], GRANT_MICRO - cost)] * 9 == [
        ([r.charged for r in settled], still_open, balance) for settled, still_open, balance in ledgers
    ]


async def test_two_discord_shard_processes_each_answer_their_own_guild(tmp_path: Path) -> None:
    """DISCORD_SHARD_COUNT=2 with shard 0 in one process and shard 1 in another: each guild's
    mention is answered once, by the process holding its shard, and charged exactly once."""
    from tests.fakes.discord import DiscordLimits, FakeDiscord
    from tests.fakes.discord_models import PRIVILEGED_INTENTS

    async with (
        postgres_database() as url,
        FakeMiniToolAI() as ai,
        FakeDiscord(limits=DiscordLimits.fast(), approved_intents=PRIVILEGED_INTENTS) as dc,
    ):
        guilds = shard_guilds(dc)
        channels = [dc.text_channel(guild, "general") for guild in guilds]
        users = [dc.user("alice"), dc.user("bob")]
        ai.chat_scripts.extend(
            ChatScript(tokens=["Hello ", "from ", "a shard."], usage=USAGE) for _ in range(2)
        )
        started: list[BotProcess] = []
        try:
            await start_shards(started, tmp_path, url, ai, dc)
            await dc.wait_for(lambda: guilds_created(dc) >= {g.id for g in guilds}, 30)
            for channel, user in zip(channels, users, strict=True):
                await dc.message_create(channel, user, f"<@{dc.bot_user.id}> hello there")
            await all_answered(dc, channels, 30)
            for process in started:
                assert 0 == await process.stop()
        finally:
            for process in started:
                await process.close()
        answers = [[m.content for m in dc.bot_messages(channel)] for channel in channels]
        shards = sorted(tuple(s.shard) for s in dc.gateway.sessions.values())
        ledgers = [await reservations_of(url, Account("discord", str(user.id))) for user in users]

    cost = PriceTable().chat_cost(MODEL, USAGE)
    assert [(0, 2), (1, 2)] == shards
    assert [["Hello from a shard."], ["Hello from a shard."]] == answers
    assert 2 == len(ai.requests_to("/api/chat-completions/"))
    assert [([cost], [], GRANT_MICRO - cost)] * 2 == [
        ([r.charged for r in settled], still_open, balance) for settled, still_open, balance in ledgers
    ]


async def test_two_discord_shard_processes_share_the_bot_wide_budget_through_redis(tmp_path: Path) -> None:
    """Sixteen channels streaming at once across two shard processes: each lets itself 50 requests
    a second, so alone the two would send up to 100 a second to a Discord allowing 60; booking the
    bot-wide budget in Redis (48 a second between them) keeps them together within it (no 429)."""
    from tests.fakes.discord import DiscordLimits, FakeDiscord
    from tests.fakes.discord_models import PRIVILEGED_INTENTS

    limits = DiscordLimits.fast(global_per_window=60, global_window=1.0)
    tokens = [f"w{i} " for i in range(100)]
    async with (
        postgres_database() as url,
        FakeMiniToolAI() as ai,
        FakeDiscord(limits=limits, approved_intents=PRIVILEGED_INTENTS) as dc,
    ):
        guilds = shard_guilds(dc)
        channels = [dc.text_channel(guild, f"room{i}") for guild in guilds for i in range(8)]
        alice = dc.user("alice")
        ai.chat_scripts.extend(ChatScript(tokens=tokens, delay=0.01) for _ in channels)
        started: list[BotProcess] = []
        try:
            await start_shards(started, tmp_path, url, ai, dc, REDIS_URL=REDIS_URL)
            await dc.wait_for(lambda: guilds_created(dc) >= {g.id for g in guilds}, 30)
            await asyncio.gather(
                *(dc.message_create(channel, alice, f"<@{dc.bot_user.id}> go") for channel in channels)
            )
            await all_answered(dc, channels, 60)
            for process in started:
                assert 0 == await process.stop()
        finally:
            for process in started:
                await process.close()
        answers = [" ".join(m.content for m in dc.bot_messages(channel)).split() for channel in channels]
        refused = [v for v in dc.violations]

    assert [] == refused, "a 429 from the fake Discord"
    assert all(words == "".join(tokens).split() for words in answers)


# ---------------------------------------------------------------- Discord shards


def shard_guilds(dc: Any) -> list[Any]:
    """Two guilds, one per shard of 2: snowflakes of an even and an odd millisecond in the past,
    never equal to an id the fake makes from now on."""
    from tests.fakes.discord_models import SnowflakeFactory

    past = (SnowflakeFactory().next() >> 22) - 10
    return [dc.guild(f"Guild {shard}", guild_id=(past - past % 2 + shard) << 22) for shard in (0, 1)]


async def start_shards(
    started: list[BotProcess], tmp_path: Path, url: str, ai: FakeMiniToolAI, dc: Any, **extra: str
) -> None:
    """``python -m bot`` as shard 0 and shard 1 of 2, each in its own process."""
    for shard in (0, 1):
        env = process_env(
            url,
            MINITOOLAI_API_KEY=ai.api_key,
            MINITOOLAI_BASE_URL=ai.base_url,
            DISCORD_TOKEN=dc.token,
            DISCORD_API_BASE_URL=dc.api_base,
            DISCORD_GATEWAY_URL=dc.gateway_url,
            DISCORD_SHARD_COUNT="2",
            DISCORD_SHARD_IDS=str(shard),
            STARTING_GRANT_USD=str(GRANT),
            **extra,
        )
        await start(started, f"shard{shard}", tmp_path, env)


def guilds_created(dc: Any) -> set[int]:
    """The guilds announced (GUILD_CREATE) to the sessions connected now."""
    return {
        int(frame["d"]["id"])
        for session in dc.gateway.sessions.values()
        if session.connection is not None
        for frame in session.history
        if frame["t"] == "GUILD_CREATE"
    }


async def all_answered(dc: Any, channels: list[Any], timeout: float) -> None:  # noqa: ASYNC109
    """Until every channel's answer is finished (its Regenerate button is on)."""
    for channel in channels:
        await dc.wait_for(
            lambda channel=channel: any("mtai:regen:" in str(m.components) for m in dc.bot_messages(channel)),
            timeout,
        )
