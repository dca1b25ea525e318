"""Private messages the bot starts itself on Discord (owner alerts, credit details): a DM.

A user who shares no server with the bot, or who closed DMs from server members, cannot be
reached; that is False rather than an error.
"""

from __future__ import annotations

import logging

import discord

from adapters.discord.replies import MAX_MESSAGE, NO_PINGS
from bot.display.text import split_message

logger = logging.getLogger(__name__)


class DiscordPrivate:
    """``bot.ports.PrivateMessenger`` for Discord."""

    def __init__(self, client: discord.Client) -> None:
        self._client = client

    async def send_private(self, holder: str, text: str) -> bool:
        if not holder.isdigit():
            return False
        try:
            user = self._client.get_user(int(holder)) or await self._client.fetch_user(int(holder))
            channel = user.dm_channel or await user.create_dm()
            for piece in split_message(text, MAX_MESSAGE):
                await channel.send(piece, allowed_mentions=NO_PINGS)
        except (discord.Forbidden, discord.NotFound):
            logger.info("Discord user %s cannot be reached by DM", holder)
            return False
        return True
