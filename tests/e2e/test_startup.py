"""Start-up failures an owner can cause: one clear line naming what to fix, no traceback, no token."""

from __future__ import annotations

import asyncio
import signal
import socket
from pathlib import Path

from tests.e2e.test_console import bot_env, run_bot, start_bot
from tests.fakes.discord import FakeDiscord
from tests.fakes.telegram import FakeTelegram

WRONG_TG = "123456:WRONG-token_value"
WRONG_DC = "MTIz.wrong.discord-token"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens there once the probe closes


def _clean(text: str, *secrets: str) -> bool:
    return "Traceback" not in text and not any(secret in text for secret in secrets)


async def test_a_telegram_token_telegram_refuses_is_named(tmp_path: Path) -> None:
    """Telegram answers 401: exit code 2 and "Telegram refused TELEGRAM_TOKEN", without the token."""
    async with FakeTelegram(token="123456:RIGHT-token") as tg:
        env = bot_env(
            tmp_path,
            MINITOOLAI_API_KEY="sk-test-key-123",
            TELEGRAM_TOKEN=WRONG_TG,
            TELEGRAM_API_BASE_URL=tg.base_url,
            TELEGRAM_FILE_BASE_URL=tg.base_file_url,
        )
        code, out, err = await run_bot(tmp_path, env, "")

    assert 2 == code
    assert "Telegram refused TELEGRAM_TOKEN" in err
    assert _clean(out + err, WRONG_TG, "WRONG-token")


async def test_an_unreachable_telegram_is_named_with_its_url(tmp_path: Path) -> None:
    """Nothing listening at TELEGRAM_API_BASE_URL: exit code 1 and a line saying where it looked."""
    url = f"http://127.0.0.1:{_closed_port()}/bot"
    env = bot_env(
        tmp_path, MINITOOLAI_API_KEY="sk-test-key-123", TELEGRAM_TOKEN=WRONG_TG, TELEGRAM_API_BASE_URL=url
    )

    code, out, err = await run_bot(tmp_path, env, "")

    assert 1 == code
    assert f"Telegram could not be reached at {url}" in err
    assert _clean(out + err, WRONG_TG, "WRONG-token")


async def test_a_discord_token_discord_refuses_is_named(tmp_path: Path) -> None:
    """Discord answers 401 at login: exit code 2 and "Discord refused DISCORD_TOKEN", without the token."""
    async with FakeDiscord(token="right-token") as dc:
        env = bot_env(
            tmp_path,
            MINITOOLAI_API_KEY="sk-test-key-123",
            DISCORD_TOKEN=WRONG_DC,
            DISCORD_API_BASE_URL=dc.api_base,
            DISCORD_GATEWAY_URL=dc.gateway_url,
        )
        code, out, err = await run_bot(tmp_path, env, "")

    assert 2 == code
    assert "Discord refused DISCORD_TOKEN" in err
    assert _clean(out + err, WRONG_DC)


async def test_an_unreachable_database_is_named_without_its_password(tmp_path: Path) -> None:
    """PostgreSQL not listening: one line naming host:port, never the password in DATABASE_URL."""
    url = f"postgresql://bot:hunter2-secret@127.0.0.1:{_closed_port()}/bot"
    env = bot_env(tmp_path, MINITOOLAI_API_KEY="sk-test-key-123", DATABASE_URL=url)

    code, out, err = await run_bot(tmp_path, env, "")

    assert 1 == code
    assert "127.0.0.1" in err
    assert _clean(out + err, "hunter2")


async def test_sigterm_stops_the_bot_cleanly(tmp_path: Path) -> None:
    """SIGTERM while the bot waits for input: exit code 0 and the log says it stopped cleanly."""
    env = bot_env(tmp_path, MINITOOLAI_API_KEY="sk-test-key-123", LOG_LEVEL="INFO")
    process = await start_bot(tmp_path, env)
    assert process.stdout is not None
    await asyncio.wait_for(process.stdout.readuntil(b"you> "), 60)  # the prompt: it is serving

    process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(process.communicate(), 60)

    assert 0 == process.returncode
    assert "stopped cleanly" in err.decode()
