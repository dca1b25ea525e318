"""Secrets never show: in reprs of the objects that hold them, and in log records (the filter)."""

from __future__ import annotations

import logging
import sys

import aiohttp

from adapters.discord.config import DiscordConfig
from adapters.telegram import TelegramConfig
from bot.logs import RedactSecrets
from bot.minitoolai.client import MiniToolAIClient
from bot.settings import Settings

KEY = "sk-live-0123456789abcdef"
TG_TOKEN = "123456:AAH-secret_token"
DC_TOKEN = "MTA.discord.secret"


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("test", logging.INFO, __file__, 1, message, args, None)


def test_settings_and_adapter_configs_do_not_show_their_secrets() -> None:
    """repr() of the settings and of both adapter configs contains no key or token."""
    settings = Settings(
        _env_file=None, minitoolai_api_key=KEY, telegram_token=TG_TOKEN, discord_token=DC_TOKEN
    )  # type: ignore[call-arg]
    telegram = TelegramConfig(
        token=TG_TOKEN,
        api_base_url="a",
        file_base_url="b",
        webhook_url=None,
        webhook_secret=KEY,
        webhook_listen="x:1",
    )
    shown = repr(settings) + repr(telegram) + repr(DiscordConfig(token=DC_TOKEN))

    for secret in (KEY, TG_TOKEN, DC_TOKEN):
        assert secret not in shown


async def test_the_client_repr_does_not_show_the_key() -> None:
    """The MiniToolAI client names its base URL, never its key."""
    async with aiohttp.ClientSession() as session:
        client = MiniToolAIClient(session, base_url="http://127.0.0.1:1", api_key=KEY)
        assert KEY not in repr(client)


def test_the_log_filter_scrubs_secrets_in_messages_and_arguments() -> None:
    """A key passed as a %-argument, or inside the message, becomes ***."""
    redact = RedactSecrets([KEY, TG_TOKEN])
    record = _record("calling with %s and header Bearer " + KEY, TG_TOKEN)

    assert redact.filter(record)

    assert "calling with *** and header Bearer ***" == record.getMessage()


def test_the_log_filter_scrubs_telegram_token_urls_it_was_not_told_about() -> None:
    """Any /bot<id>:<token> path (a Telegram method or file URL) loses its token."""
    record = _record("GET https://api.telegram.org/file/bot999:XYZ-other_token/photos/1.jpg failed")

    RedactSecrets([]).filter(record)

    assert "GET https://api.telegram.org/file/bot***/photos/1.jpg failed" == record.getMessage()


def test_the_log_filter_scrubs_tracebacks() -> None:
    """An exception whose text carries a secret is logged with the secret scrubbed."""
    try:
        raise RuntimeError(f"upstream echoed {KEY}")
    except RuntimeError:
        record = logging.LogRecord("test", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())

    RedactSecrets([KEY]).filter(record)

    assert record.exc_text is not None
    assert KEY not in record.exc_text
    assert "upstream echoed ***" in record.exc_text
