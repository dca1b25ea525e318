"""Private messages the bot starts itself on Telegram (owner alerts, credit details).

Telegram lets a bot write first only to people who opened a private chat with it; for anyone
else it answers 403 (or "chat not found"), which here is False rather than an error.
"""

from __future__ import annotations

from telegram import Bot
from telegram.error import BadRequest, Forbidden

from adapters.telegram.pacing import MAX_MESSAGE, ChatPacing
from bot.display.text import split_message


class TelegramPrivate:
    """``bot.ports.PrivateMessenger`` for Telegram: the person's own chat with the bot."""

    def __init__(self, bot: Bot, pacing: ChatPacing) -> None:
        self._bot = bot
        self._pacing = pacing

    async def send_private(self, holder: str, text: str) -> bool:
        if not holder.lstrip("-").isdigit():
            return False
        chat = int(holder)
        try:
            for piece in split_message(text, MAX_MESSAGE):
                await self._pacing.run(chat, lambda piece=piece: self._bot.send_message(chat, piece))  # type: ignore[misc]
        except Forbidden:
            return False
        except BadRequest as exc:
            if "chat not found" not in exc.message.lower():
                raise
            return False
        return True
