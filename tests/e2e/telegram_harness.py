"""The whole bot, run by its composition root against the fake Telegram and the fake MiniToolAI.

    async with running_bot(tmp_path) as h:
        alice = h.tg.user("Alice", "alice")
        h.tg.user_message(h.tg.private_chat(alice), alice, "hi")
        sent = await h.tg.wait_for(lambda r: r.method == "sendMessage" and r.ok)

The fake Telegram's flood-control windows are scaled down by ``SCALE`` and the bot's pacing by
the same factor, so a minute of Telegram time passes in about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.__main__ import serve
from bot.settings import Settings
from tests.fakes.minitoolai import FakeMiniToolAI
from tests.fakes.telegram import FakeTelegram, RecordedRequest

TOKEN = "123456:TEST-token_secret"
SCALE = 0.02  # one Telegram second is 20 ms here, for the fake's limits and the bot's pacing alike
CHAT_PATH = "/api/chat-completions/"
JSON = dict[str, Any]


@dataclass(slots=True)
class Harness:
    tg: FakeTelegram
    ai: FakeMiniToolAI
    settings: Settings

    def chat_requests(self) -> list[JSON]:
        """The JSON bodies of every chat completion request MiniToolAI received."""
        return [r.json for r in self.ai.requests_to(CHAT_PATH)]

    async def answered(self, chat_id: int, *, start: int = 0, within: float = 5.0) -> RecordedRequest:
        """The call that put the Regenerate button on a finished answer in ``chat_id`` (with the final
        text, or on its own when the answer's last message already had it)."""
        return await self.tg.wait_for(
            lambda r: (
                r.ok
                and r.method in ("sendMessage", "editMessageText", "editMessageReplyMarkup")
                and r.params.get("chat_id") == chat_id
                and "regen" in str(r.params.get("reply_markup"))
            ),
            within,
            start=start,
        )

    async def all_answered(self, chat_id: int, count: int, *, start: int = 0, within: float = 10.0) -> None:
        """Wait until ``count`` answers in ``chat_id`` have finished (from request ``start`` on)."""
        for _ in range(count):
            found = await self.answered(chat_id, start=start, within=within)
            start = self.tg.requests.index(found) + 1

    def bot_texts(self, chat_id: int, thread_id: int | None = None) -> list[str]:
        return self.tg.messages_in(chat_id, thread_id, from_bot=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def running_bot(
    tmp_path: Path,
    *,
    grant: str = "5",
    fake: Callable[[], FakeTelegram] | None = None,
    **settings: Any,
) -> AsyncIterator[Harness]:
    """Start the fakes and the bot; stop the bot (and check it stopped cleanly) on exit."""
    make_fake = fake or (lambda: FakeTelegram(token=TOKEN, time_scale=SCALE))
    async with FakeMiniToolAI() as ai, make_fake() as tg:
        values: dict[str, Any] = {
            "_env_file": None,
            "minitoolai_api_key": ai.api_key,
            "minitoolai_base_url": ai.base_url,
            "telegram_token": tg.token,
            "telegram_api_base_url": tg.base_url,
            "telegram_file_base_url": tg.base_file_url,
            "database_url": f"sqlite:///{tmp_path / 'bot.sqlite3'}",
            "starting_grant_usd": grant,
            "telegram_pace_scale": SCALE,
            **settings,
        }
        config = Settings(**values)
        stop = asyncio.Event()
        task = asyncio.create_task(serve(config, stop), name="bot")
        try:
            await _started(tg, config, task)
            yield Harness(tg, ai, config)
        finally:
            stop.set()
            async with asyncio.timeout(10):
                await task


async def _started(tg: FakeTelegram, config: Settings, task: asyncio.Task[None]) -> None:
    waiting = (
        tg.wait_for(lambda r: r.method == "setWebhook" and r.ok, 10)
        if config.telegram_webhook_url
        else tg.wait_until_polling(10)
    )
    ready = asyncio.ensure_future(waiting)
    done, _ = await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        task.result()  # raises what stopped the bot
        raise AssertionError("the bot stopped before it started serving")
    ready.result()
