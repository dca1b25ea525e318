"""Private messages the bot starts itself on Telegram (owner alerts, credit details).

Telegram lets a bot write first only to people who opened a private chat with it; for anyone
else it answers 403 (or "chat not found"), which here is False rather than an error.
"""

from __future__ import annotations

from telegram import Bot
from telegram.error import BadRequest, Forbidden

from adapters.telegram.pacing import ChatPacing
from adapters.telegram.surface import ChatTarget, send_text


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
            await send_text(self._bot, self._pacing, ChatTarget(chat), text)
        except Forbidden:
            return False
        except BadRequest as exc:
            if "chat not found" not in exc.message.lower():
                raise
            return False
        return True
