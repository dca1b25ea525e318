"""Telegram across a restart of the whole bot, with work in flight.

Both fakes outlive the bot: one bot (the real composition root) is stopped and a new one started
over the same SQLite file, as an owner restarting the process would. An image job submitted
before the stop is finished by the new bot exactly once; an answer streaming at the stop ends
with a note and is remembered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import SecretStr

import storage
from bot.__main__ import serve
from bot.minitoolai.prices import PriceTable
from bot.ports import Account
from bot.settings import Settings
from tests.e2e.telegram_harness import CHAT_PATH, SCALE, TOKEN, _started
from tests.fakes.minitoolai import ChatScript, FakeMiniToolAI, ImageScript
from tests.fakes.telegram import FakeTelegram, RecordedRequest

GRANT = Decimal(5)
FAST_JOBS: dict[str, Any] = {
    "image_poll_initial_seconds": 0.01,
    "image_poll_max_seconds": 0.02,
    "image_progress_interval_seconds": 0.0,
}
SUBMIT_PATH = "/api/texttoimage/"


@contextlib.asynccontextmanager
async def fakes() -> AsyncIterator[tuple[FakeTelegram, FakeMiniToolAI]]:
    async with FakeMiniToolAI() as ai, FakeTelegram(token=TOKEN, time_scale=SCALE) as tg:
        yield tg, ai


@contextlib.asynccontextmanager
async def bot(tg: FakeTelegram, ai: FakeMiniToolAI, tmp_path: Path, **settings: Any) -> AsyncIterator[None]:
    """One run of the bot over ``tmp_path``'s database, stopped (cleanly) on exit."""
    config = Settings(
        _env_file=None,  # type: ignore[call-arg]
        minitoolai_api_key=SecretStr(ai.api_key),
        minitoolai_base_url=ai.base_url,
        telegram_token=SecretStr(TOKEN),
        telegram_api_base_url=tg.base_url,
        telegram_file_base_url=tg.base_file_url,
        database_url=f"sqlite:///{tmp_path / 'bot.sqlite3'}",
        starting_grant_usd=GRANT,
        telegram_pace_scale=SCALE,
        **settings,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(serve(config, stop), name="bot")
    try:
        await _started(tg, config, task)
        yield
    finally:
        stop.set()
        async with asyncio.timeout(10):
            await task


def _in(chat_id: int, *methods: str) -> Any:
    def match(r: RecordedRequest) -> bool:
        return r.ok and r.method in methods and r.params.get("chat_id") == chat_id

    return match


async def test_image_job_in_flight_at_a_restart_is_posted_and_charged_once(tmp_path: Path) -> None:
    """Stopped while its job runs upstream: the new bot polls it (no second submit), posts once, charges once."""
    async with fakes() as (tg, ai):
        alice = tg.user("Alice", "alice")
        chat = tg.private_chat(alice)
        script = ImageScript(pending_polls=1_000_000)
        ai.image_scripts.append(script)
        async with bot(tg, ai, tmp_path, **FAST_JOBS):
            tg.user_message(chat, alice, "/imagine a fox")
            # "Generating… <n> s" is shown only once the submitted job is stored and polled.
            await tg.wait_for(
                lambda r: (
                    _in(chat["id"], "sendMessage", "editMessageText")(r)
                    and str(r.params.get("text", "")).startswith("Generating… ")
                    and str(r.params["text"]).endswith(" s")
                ),
                10,
            )
        mark = len(tg.requests)
        assert 1 == len(ai.requests_to(SUBMIT_PATH))
        assert [] == tg.calls("sendPhoto")

        script.pending_polls = 0  # the job finishes upstream while no bot runs
        async with bot(tg, ai, tmp_path, **FAST_JOBS):
            await tg.wait_for(_in(chat["id"], "sendPhoto", "sendDocument"), 10, start=mark)
            await tg.wait_for(_in(chat["id"], "deleteMessage"), 10, start=mark)  # progress removed: done

        posted = [r for r in tg.requests if _in(chat["id"], "sendPhoto", "sendDocument")(r)]
        store = await storage.open_store(f"sqlite:///{tmp_path / 'bot.sqlite3'}")
        try:
            account = Account("telegram", str(alice["id"]))
            charges = await store.settled_reservations(account, limit=10)
            balance = await store.balance(account)
        finally:
            await store.close()
    assert 1 == len(posted)
    assert 1 == len(ai.requests_to(SUBMIT_PATH)), "the new bot polled the job, never submitted it again"
    assert ["image"] == [c.purpose for c in charges]
    price = PriceTable().image_cost("dreamshaper")
    assert [price] == [c.charged for c in charges]
    assert int(GRANT * 1_000_000) - price == balance


async def test_answer_streaming_at_a_restart_ends_with_a_note_and_is_remembered(tmp_path: Path) -> None:
    """Stopped mid-answer: the answer is finished with the restart note, and the next bot remembers it."""
    tokens = ["Partial words "] + [f"w{i} " for i in range(2000)]
    async with fakes() as (tg, ai):
        alice = tg.user("Alice", "alice")
        chat = tg.private_chat(alice)
        ai.chat_scripts.append(ChatScript(tokens=tokens, delay=0.01))  # 20 s: far longer than the test
        async with bot(tg, ai, tmp_path):
            tg.user_message(chat, alice, "Tell me a long story")
            await tg.wait_for(
                lambda r: (
                    _in(chat["id"], "sendMessageDraft", "sendMessage")(r)
                    and "Partial words" in str(r.params["text"])
                ),
                10,
            )
        final = tg.messages_in(chat["id"], from_bot=True)
        assert 1 == len(final)
        assert final[0].startswith("Partial words")
        assert final[0].endswith("Interrupted: the bot is restarting.")

        async with bot(tg, ai, tmp_path):
            mark = len(tg.requests)
            tg.user_message(chat, alice, "And then?")
            # Finished: the Regenerate button came (with the final text, in a private chat).
            finished = _in(chat["id"], "sendMessage", "editMessageText", "editMessageReplyMarkup")
            await tg.wait_for(
                lambda r: finished(r) and "regen" in str(r.params.get("reply_markup")), 10, start=mark
            )
        messages = ai.requests_to(CHAT_PATH)[-1].json["messages"]
    said = [(m["role"], m["content"]) for m in messages if m["role"] not in ("system", "developer")]
    assert ("user", "Tell me a long story") == said[0]
    assert "assistant" == said[1][0]
    assert said[1][1].startswith("Partial words")
    assert ("user", "And then?") == said[-1]
