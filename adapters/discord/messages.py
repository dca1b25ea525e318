"""Messages for the bot: a mention, a reply to one of its messages, a DM, or a bot-opened thread.

Without the message content intent Discord still delivers the text of exactly these messages,
so the bot works there either way. With auto-thread on in a channel, a conversation started by
a mention moves to a thread of its own (named after the question), whose messages the bot
then answers without being mentioned.
"""

from __future__ import annotations

import logging
import re

import discord

from adapters.discord.access import AccessGate, say
from adapters.discord.attachments import download_files
from adapters.discord.chat import ChatFlows
from adapters.discord.config import DiscordConfig
from adapters.discord.places import account, message_place
from adapters.discord.replies import NO_PINGS, log_error, user_text
from bot.access.service import CHAT_OFF
from bot.chat.conversations import ChatRequest
from bot.core import Core
from bot.display.text import truncate
from bot.i18n import _
from bot.ports import Place

logger = logging.getLogger(__name__)

THREAD_NAME = 90


class MessageFlows:
    def __init__(self, core: Core, chat: ChatFlows, config: DiscordConfig) -> None:
        self._core = core
        self._chat = chat
        self._config = config
        self._gate = AccessGate(core)

    async def on_message(self, me: discord.ClientUser, message: discord.Message) -> None:
        """Answer ``message`` if it is for the bot; nothing it raises escapes."""
        if message.author.bot or not self._for_me(me, message):
            return
        try:
            if not await self._gate.admit_message(message):
                return
            place = message_place(message)
            if self._core.access.switches(place).chat_off:
                if self._core.access.first_notice(("chat off", place)):
                    await say(message, _(CHAT_OFF))
                return
            await self._answer(me, message)
        except Exception as exc:
            log_error(exc, "message handler")
            try:
                await message.channel.send(
                    user_text(exc),
                    allowed_mentions=NO_PINGS,
                    reference=message.to_reference(fail_if_not_exists=False),
                )
            except discord.HTTPException:
                logger.warning("could not tell the asker about an error", exc_info=True)

    def _for_me(self, me: discord.ClientUser, message: discord.Message) -> bool:
        if message.guild is None:
            return True
        if any(user.id == me.id for user in message.mentions):
            return True
        replied = _replied_message(message)
        if replied is not None and replied.author.id == me.id:
            return True
        channel = message.channel
        # A thread the bot opened is a conversation with it; without the content intent its
        # messages arrive blank, and a blank message is nobody's question.
        has_body = bool(message.content or message.attachments)
        if has_body and self._core.access.switches(message_place(message)).reply_all:
            return True  # a reply-all channel (or a thread of one): every message is for the bot
        return isinstance(channel, discord.Thread) and channel.owner_id == me.id and has_body

    async def _answer(self, me: discord.ClientUser, message: discord.Message) -> None:
        text = re.sub(rf"<@!?{me.id}>", "", message.content).strip()
        files = await download_files(message.attachments, self._config.max_image_bytes)
        replied = _replied_message(message)
        quoted = (
            replied.content
            if replied is not None and replied.author.id != me.id and replied.content
            else None
        )
        place = message_place(message)
        channel: discord.abc.Messageable = message.channel
        reply_to: discord.Message | None = message
        if await self._auto_thread(message, place):
            thread = await message.create_thread(name=truncate(text or "Chat", THREAD_NAME))
            channel, reply_to = thread, None
            place = Place(place.platform, place.scope, str(thread.id), parent=place.channel)
        request = ChatRequest(
            user=account(message.author),
            place=place,
            text=text,
            files=files,
            quoted_text=quoted,
            user_name=message.author.display_name if message.guild is not None else "",
        )
        await self._chat.answer_message(message, channel, int(place.channel), request, reply_to=reply_to)

    async def _auto_thread(self, message: discord.Message, place: Place) -> bool:
        if not isinstance(message.channel, discord.TextChannel):
            return False  # threads, DMs and voice-channel chats answer in place
        return (await self._core.prefs.effective(place)).auto_thread


def _replied_message(message: discord.Message) -> discord.Message | None:
    reference = message.reference
    if reference is None:
        return None
    resolved = reference.resolved
    return resolved if isinstance(resolved, discord.Message) else reference.cached_message
