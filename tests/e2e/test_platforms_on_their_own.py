"""Start-up rules for several platforms and several workers: each platform runs on its own, and a
webhook without a shared secret is refused at start."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.processes import BotProcess, process_env
from tests.e2e.telegram_harness import SCALE, TOKEN, free_port
from tests.e2e.test_console import run_bot
from tests.fakes.minitoolai import FakeMiniToolAI
from tests.fakes.telegram import FakeTelegram, RecordedRequest


async def test_a_webhook_without_a_secret_is_refused_at_start(tmp_path: Path) -> None:
    env = process_env(
        f"sqlite:///{tmp_path / 'bot.sqlite3'}",
        MINITOOLAI_API_KEY="sk-test",
        TELEGRAM_TOKEN=TOKEN,
        TELEGRAM_WEBHOOK_URL="https://bot.example.com/hook",
    )

    code, out, err = await run_bot(tmp_path, env, "")

    assert 2 == code
    assert "TELEGRAM_WEBHOOK_SECRET" in err
    assert "same for every worker" in err
    assert "Traceback" not in err + out
    assert TOKEN not in err + out


async def test_telegram_serves_while_discord_cannot_start(tmp_path: Path) -> None:
    """Discord unreachable: it is logged and retried with back-off; Telegram answers meanwhile."""
    async with FakeMiniToolAI() as ai, FakeTelegram(token=TOKEN, time_scale=SCALE) as tg:
        env = process_env(
            f"sqlite:///{tmp_path / 'bot.sqlite3'}",
            MINITOOLAI_API_KEY=ai.api_key,
            MINITOOLAI_BASE_URL=ai.base_url,
            TELEGRAM_TOKEN=TOKEN,
            TELEGRAM_API_BASE_URL=tg.base_url,
            TELEGRAM_FILE_BASE_URL=tg.base_file_url,
            TELEGRAM_PACE_SCALE=str(SCALE),
            DISCORD_TOKEN="discord-test-token",
            DISCORD_API_BASE_URL=f"http://127.0.0.1:{free_port()}/api/v10",  # nothing listens
        )
        bot = await BotProcess.start("both", tmp_path, env)
        try:
            await bot.wait_for_line(r"discord stopped with an error; starting it again in 1 s")
            await tg.wait_until_polling(20)
            alice = tg.user("Alice", "alice")
            chat = tg.private_chat(alice)
            tg.user_message(chat, alice, "Are you there?")

            def answered(r: RecordedRequest) -> bool:
                return (
                    r.ok
                    and r.params.get("chat_id") == chat["id"]
                    and "regen" in str(r.params.get("reply_markup"))
                )

            await tg.wait_for(answered, 20)
            await bot.wait_for_line(r"discord stopped with an error; starting it again in 2 s")
            assert 0 == await bot.stop()
        finally:
            await bot.close()
    assert "discord-test-token" not in bot.log
