"""Operations on the running bot: /metrics after an answer, /readyz following the platform's
connection, JSON log lines, and ``python -m bot status``."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.credits.money import format_amount
from bot.logs import WithRequestId
from bot.minitoolai.prices import PriceTable
from bot.minitoolai.types import Usage
from tests.e2e.discord_harness import DiscordWorld
from tests.e2e.telegram_harness import free_port, running_bot
from tests.e2e.test_console import bot_env, run_bot
from tests.fakes.minitoolai import ChatScript, FakeMiniToolAI, ImageScript

NS = "minitoolai_bot_"


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 when none)."""
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


@contextmanager
def log_event(logger_name: str, fragment: str) -> Iterator[asyncio.Event]:
    """An event set when ``logger_name`` logs a line containing ``fragment`` (at INFO or above)."""
    seen = asyncio.Event()

    class Watch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if fragment in record.getMessage():
                seen.set()

    watched = logging.getLogger(logger_name)
    handler, level = Watch(logging.INFO), watched.level
    watched.addHandler(handler)
    watched.setLevel(logging.INFO)
    try:
        yield seen
    finally:
        watched.removeHandler(handler)
        watched.setLevel(level)


@contextmanager
def captured(logger_name: str) -> Iterator[list[logging.LogRecord]]:
    """Records of ``logger_name`` at INFO and above, each with the request id the bot's handler adds."""
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(logging.INFO)
    handler.addFilter(WithRequestId())
    watched = logging.getLogger(logger_name)
    level = watched.level
    watched.addHandler(handler)
    watched.setLevel(logging.INFO)
    try:
        yield records
    finally:
        watched.removeHandler(handler)
        watched.setLevel(level)


async def test_metrics_show_an_answer_its_tokens_charge_and_edits(tmp_path: Path) -> None:
    """After one group answer, /metrics counts it complete, with the usage's tokens, its exact
    charge, and as many sends and edits as Telegram received."""
    listen = f"127.0.0.1:{free_port()}"
    usage = Usage(prompt_tokens=321, completion_tokens=45)
    async with running_bot(tmp_path, metrics_listen=listen) as h:
        url = f"http://{listen}/metrics"
        _, before = await get(url)
        h.ai.chat_scripts.append(ChatScript(tokens=[f"word{i} " for i in range(30)], delay=0.01, usage=usage))
        group = h.tg.supergroup("Friends")
        bob = h.tg.user("Bob", "bob")
        mark = len(h.tg.requests)
        with captured("bot") as records:
            h.tg.user_message(group, bob, "@minitoolai_bot tell me a story")
            await h.answered(group["id"], start=mark)
        status, after = await get(url)
        shown = [
            r
            for r in h.tg.requests[mark:]
            if r.ok and r.method in ("sendMessage", "editMessageText", "editMessageReplyMarkup")
        ]

    def grew(name: str, **labels: str) -> float:
        return sample(after, NS + name, **labels) - sample(before, NS + name, **labels)

    assert 200 == status
    assert 1 == grew("answers_total", platform="telegram", model="gpt-4o-mini", outcome="complete")
    assert 321 == grew("tokens_total", platform="telegram", model="gpt-4o-mini", direction="in")
    assert 45 == grew("tokens_total", platform="telegram", model="gpt-4o-mini", direction="out")
    expected = PriceTable().chat_cost("gpt-4o-mini", usage)
    assert expected == grew("charged_microdollars_total", platform="telegram", purpose="chat")
    edits = sum(r.method != "sendMessage" for r in shown)
    sends = sum(r.method == "sendMessage" for r in shown)
    assert edits >= 1
    assert edits == grew("platform_messages_total", platform="telegram", op="edit") + grew(
        "platform_messages_total", platform="telegram", op="finish"
    )
    assert sends == grew("platform_messages_total", platform="telegram", op="send")
    assert 1 == grew("first_text_seconds_count", platform="telegram")
    assert grew("visible_lag_seconds_count", platform="telegram") >= 1
    assert grew("db_call_seconds_count", op="settle") >= 1
    assert 1 == sample(after, NS + "ready")
    # The answer's log lines, from the stream's end to the settled answer, share one request id.
    ids = {
        getattr(r, "request_id", None)
        for r in records
        if r.getMessage().startswith(("chat finished", "answer complete"))
    }
    assert 1 == len(ids) and "-" not in ids
    assert sample(after, NS + "open_reservations") == 0
    # Nothing personal in any label: no user id, chat id or text.
    for family in text_string_to_metric_families(after):
        for s in family.samples:
            values = " ".join(s.labels.values())
            assert str(bob["id"]) not in values and str(group["id"]) not in values
            assert "story" not in values and "word" not in values


async def test_readyz_follows_the_platform_connection(tmp_path: Path) -> None:
    """/healthz is 200 throughout; /readyz is 200 while Telegram answers, 503 naming Telegram
    once it goes away, and 200 again once the bot is polling it again."""
    listen = f"127.0.0.1:{free_port()}"
    async with running_bot(tmp_path, metrics_listen=listen) as h:
        ready_before = await get(f"http://{listen}/readyz")
        with log_event("bot.ops.health", "telegram: disconnected") as gone:
            await h.tg.go_offline()
            await asyncio.wait_for(gone.wait(), 10)
        while_down = await get(f"http://{listen}/readyz")
        alive_while_down = await get(f"http://{listen}/healthz")
        h.ai.chat_scripts.append(ChatScript(tokens=["Back again."]))
        alice = h.tg.user("Alice", "alice")
        with log_event("bot.ops.health", "telegram: connected") as back:
            await h.tg.go_online()
            h.tg.user_message(h.tg.private_chat(alice), alice, "are you there?")
            await asyncio.wait_for(back.wait(), 15)
        ready_after = await get(f"http://{listen}/readyz")

    assert (200, "ready\n") == ready_before
    assert 503 == while_down[0]
    assert "telegram: disconnected" in while_down[1]
    assert 200 == alive_while_down[0]
    assert 200 == ready_after[0]


async def test_json_logs_parse_line_by_line_share_a_request_id_and_hold_no_secret(tmp_path: Path) -> None:
    """LOG_FORMAT=json: every stderr line is one JSON object; an answer's lines (the stream's end,
    the settled answer) share a request id, two answers have two; the API key appears nowhere."""
    async with FakeMiniToolAI() as fake:
        fake.chat_scripts.append(ChatScript(tokens=["One."]))
        fake.chat_scripts.append(ChatScript(tokens=["Two."]))
        env = bot_env(
            tmp_path,
            MINITOOLAI_API_KEY=fake.api_key,
            MINITOOLAI_BASE_URL=fake.base_url,
            LOG_FORMAT="json",
            LOG_LEVEL="INFO",
        )

        code, out, err = await run_bot(tmp_path, env, "first\nsecond\n")

    assert 0 == code, err
    entries = [json.loads(line) for line in err.splitlines()]
    assert entries and all({"time", "level", "logger", "message", "request_id"} <= e.keys() for e in entries)
    finished = [e["request_id"] for e in entries if e["message"].startswith("chat finished")]
    settled = [e["request_id"] for e in entries if e["message"].startswith("answer complete")]
    assert 2 == len(set(finished)) and "-" not in finished
    assert finished == settled
    assert fake.api_key not in err + out


async def test_status_reports_database_platform_queue_holds_and_spending(tmp_path: Path) -> None:
    """``python -m bot status`` after a Telegram answer: the database answers, Telegram's last
    connection is recorded, nothing is queued or held, and today's spending is the charge."""
    usage = Usage(prompt_tokens=20, completion_tokens=300)
    async with running_bot(tmp_path) as h:
        h.ai.chat_scripts.append(ChatScript(tokens=["Hi."], usage=usage))
        alice = h.tg.user("Alice", "alice")
        chat = h.tg.private_chat(alice)
        h.tg.user_message(chat, alice, "hello")
        await h.answered(chat["id"])
        token = h.settings.telegram_token
    assert token is not None
    env = bot_env(tmp_path, TELEGRAM_TOKEN=token.get_secret_value())

    code, out, err = await run_bot(tmp_path, env, "", "status")

    assert 0 == code, err
    assert "Database: answers" in out
    assert "Telegram: disconnected (stopped)" in out and "last connected 20" in out
    assert "Picture queue: 0 queued, 0 generating." in out
    assert "Open holds: 0" in out
    charge = PriceTable().chat_cost("gpt-4o-mini", usage)
    assert charge > 0
    assert f"Spent today (UTC): {format_amount(charge)}." in out
    assert token.get_secret_value() not in out + err


async def test_discord_reports_its_gateway_connection(tmp_path: Path) -> None:
    """Discord is ready once its gateway connects; a dropped gateway is reported disconnected,
    and ready again once discord.py has reconnected."""
    listen = f"127.0.0.1:{free_port()}"
    async with DiscordWorld.open(tmp_path) as world:
        with log_event("bot.ops.health", "discord: connected") as connected:
            async with world.bot(metrics_listen=listen):
                await asyncio.wait_for(connected.wait(), 10)
                ready = await get(f"http://{listen}/readyz")
                connected.clear()
                with log_event("bot.ops.health", "discord: disconnected") as dropped:
                    await world.dc.drop_gateway()
                    await asyncio.wait_for(dropped.wait(), 10)
                await asyncio.wait_for(connected.wait(), 15)
                ready_again = await get(f"http://{listen}/readyz")
                _, scraped = await get(f"http://{listen}/metrics")

    assert (200, "ready\n") == ready
    assert (200, "ready\n") == ready_again
    assert 1 == sample(scraped, NS + "platform_connected", platform="discord")


async def test_a_refused_answer_is_counted_with_its_reason(tmp_path: Path) -> None:
    """A user without credit is refused before anything goes upstream: answers_total counts it
    refused for "credits", and no chat request reached MiniToolAI."""
    listen = f"127.0.0.1:{free_port()}"
    async with running_bot(tmp_path, grant="0", metrics_listen=listen) as h:
        _, before = await get(f"http://{listen}/metrics")
        alice = h.tg.user("Alice", "alice")
        chat = h.tg.private_chat(alice)
        mark = len(h.tg.requests)
        h.tg.user_message(chat, alice, "hello")
        await h.tg.wait_for(lambda r: r.method == "sendMessage" and r.ok, start=mark)
        _, after = await get(f"http://{listen}/metrics")

    labels = {"platform": "telegram", "outcome": "refused", "reason": "credits"}
    name = NS + "answers_total"
    assert 1 == sample(after, name, **labels) - sample(before, name, **labels)
    assert [] == h.chat_requests()


async def test_an_update_refused_by_the_access_gate_logs_under_its_own_request_id(tmp_path: Path) -> None:
    """Every Telegram update starts a request before the access gate runs: the gate's refusal line
    carries a request id, not "-"."""
    with captured("adapters.telegram.access") as records:
        async with running_bot(tmp_path, blocked_users="telegram:10001") as h:
            alice = h.tg.user("Alice", "alice")
            assert 10001 == alice["id"]  # the fake's first user: the one blocked
            chat = h.tg.private_chat(alice)
            mark = len(h.tg.requests)
            h.tg.user_message(chat, alice, "hello")
            await h.tg.wait_for(lambda r: r.method == "sendMessage" and r.ok, start=mark)

    refused = [r for r in records if r.getMessage().startswith("refused")]
    assert refused
    assert all(getattr(r, "request_id", "-") != "-" for r in refused)
    assert [] == h.chat_requests()


async def test_metrics_follow_a_picture_job_through_its_states(tmp_path: Path) -> None:
    """/imagine: the job is counted queued, submitted and done, its queue wait observed, its
    price charged for "image", and nothing is left queued or held."""
    listen = f"127.0.0.1:{free_port()}"
    fast = {"image_poll_initial_seconds": 0.01, "image_poll_max_seconds": 0.02}
    async with running_bot(tmp_path, metrics_listen=listen, **fast) as h:
        url = f"http://{listen}/metrics"
        _, before = await get(url)
        h.ai.image_scripts.append(ImageScript(pending_polls=1))
        group = h.tg.supergroup("Artists")
        h.tg.user_message(group, h.tg.user("Alice"), "/imagine a red fox --model dreamshaper")
        await h.tg.wait_for(lambda r: r.method == "sendPhoto" and r.ok, 10)
        await h.tg.wait_for(lambda r: r.method == "deleteMessage" and r.ok, 10)
        _, after = await get(url)

    def grew(name: str, **labels: str) -> float:
        return sample(after, NS + name, **labels) - sample(before, NS + name, **labels)

    for state in ("queued", "submitted", "done"):
        assert 1 == grew("image_jobs_total", platform="telegram", state=state), state
    assert 0 == grew("image_jobs_total", platform="telegram", state="failed")
    assert 1 == grew("image_queue_wait_seconds_count", platform="telegram")
    assert PriceTable().image_cost("dreamshaper") == grew(
        "charged_microdollars_total", platform="telegram", purpose="image"
    )
    assert 0 == sample(after, NS + "image_queue_length")
    assert 0 == sample(after, NS + "open_reservations")


async def test_platform_429s_and_their_retry_after_are_counted(tmp_path: Path) -> None:
    """Two 429s from Telegram on edits, one from Discord on a message: each counted once under its
    platform, with the seconds of retry_after it asked for."""
    listen = f"127.0.0.1:{free_port()}"
    async with running_bot(tmp_path, metrics_listen=listen) as h:
        _, before = await get(f"http://{listen}/metrics")
        h.ai.chat_scripts.append(ChatScript(tokens=[f"w{i} " for i in range(60)], delay=0.005))
        h.tg.fail_next("editMessageText", 429, "Too Many Requests: retry after 1", 0.25, times=2)
        group = h.tg.supergroup("Limited")
        mark = len(h.tg.requests)
        h.tg.user_message(group, h.tg.user("Alice", "alice"), "@minitoolai_bot go")
        await h.answered(group["id"], start=mark, within=15)
        _, telegram = await get(f"http://{listen}/metrics")
    async with DiscordWorld.open(tmp_path / "discord") as world:
        world.ai.chat_scripts.append(ChatScript(tokens=["Hello."]))
        world.dc.fail_next("POST", r"/channels/\d+/messages", status=429, retry_after=0.05)
        async with world.bot(metrics_listen=listen):
            await world.dc.message_create(world.general, world.alice, f"<@{world.dc.bot_user.id}> hi")
            await world.finished_answer(world.general)
            _, discord = await get(f"http://{listen}/metrics")

    def grew(text: str, name: str, platform: str) -> float:
        return sample(text, NS + name, platform=platform) - sample(before, NS + name, platform=platform)

    assert 2 == grew(telegram, "platform_rate_limited_total", "telegram")
    assert 0.5 == grew(telegram, "platform_retry_after_seconds_total", "telegram")
    assert 1 == grew(discord, "platform_rate_limited_total", "discord")
    # Discord's Retry-After header gives whole seconds (its body's 0.05 is what discord.py waits).
    assert 1 == grew(discord, "platform_retry_after_seconds_total", "discord")


async def test_an_upstream_error_is_counted_by_kind_and_fails_the_answer(tmp_path: Path) -> None:
    """MiniToolAI answers 402: upstream_errors_total counts a PaymentRequired, the answer is
    counted failed for "upstream", and nothing is charged."""
    listen = f"127.0.0.1:{free_port()}"
    async with running_bot(tmp_path, metrics_listen=listen) as h:
        _, before = await get(f"http://{listen}/metrics")
        h.ai.fail_next(402, {"error": {"message": "insufficient balance"}})
        alice = h.tg.user("Alice", "alice")
        chat = h.tg.private_chat(alice)
        mark = len(h.tg.requests)
        h.tg.user_message(chat, alice, "hello")
        await h.tg.wait_for(lambda r: r.method == "sendMessage" and r.ok, start=mark)
        _, after = await get(f"http://{listen}/metrics")

    def grew(name: str, **labels: str) -> float:
        return sample(after, NS + name, **labels) - sample(before, NS + name, **labels)

    assert 1 == grew("upstream_errors_total", kind="PaymentRequired")
    assert 1 == grew("answers_total", platform="telegram", outcome="failed", reason="upstream")
    assert 0 == grew("charged_microdollars_total", platform="telegram")
    assert 0 == sample(after, NS + "open_reservations")
