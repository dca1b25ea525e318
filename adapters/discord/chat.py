"""Chat answers on Discord: /chat, mentions and replies, and the Stop / Regenerate buttons.

Each flow builds the core's request, picks the surface (the interaction or the channel), and
hands both to ``ConversationService`` with the channel's shared edit budget. Errors before
anything is shown become an ephemeral reply (for an interaction: the "thinking…" placeholder
is removed first); errors after that are already on the answer as a note.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import discord

from adapters.discord.config import DiscordConfig
from adapters.discord.pacing import ChannelPacing
from adapters.discord.places import PLATFORM, account, interaction_actor, interaction_place
from adapters.discord.replies import NO_PINGS, log_error, reply, reply_error, user_text
from adapters.discord.surface import ChannelSurface, Deferral, InteractionSurface
from bot.chat.conversations import AnswerResult, ChatRequest
from bot.chat.conversations import View as AnswerView
from bot.core import Core
from bot.errors import InsufficientCredits, NotAllowed
from bot.i18n import _
from bot.ports import Account

logger = logging.getLogger(__name__)

SHUTDOWN_GRACE = 10.0  # seconds answers get to record themselves when the bot stops


class ChatFlows:
    def __init__(self, core: Core, pacing: ChannelPacing, config: DiscordConfig) -> None:
        self._core = core
        self._pacing = pacing
        self._config = config

    async def shutdown(self) -> None:
        """End answers still streaming with a note while the connection to Discord is still open."""
        await self._core.chat.interrupt(PLATFORM, grace=SHUTDOWN_GRACE)

    def _view(self, surface: InteractionSurface | ChannelSurface, channel_id: int) -> AnswerView:
        return AnswerView(surface, self._pacing.policy(), self._pacing.bucket(channel_id))

    # ------------------------------------------------------------ interactions

    async def answer_interaction(
        self, interaction: discord.Interaction, request: ChatRequest, deferral: Deferral | None = None
    ) -> None:
        """Stream the answer to an interaction deferred by the caller (or being deferred: ``deferral``)."""
        surface = InteractionSurface(
            interaction, interaction.user.id, window=self._config.interaction_window, deferral=deferral
        )
        view = self._view(surface, interaction.channel_id or 0)
        await self._run_interaction(interaction, surface, lambda: self._core.chat.answer(request, view))

    async def _run_interaction(
        self,
        interaction: discord.Interaction,
        surface: InteractionSurface,
        run: Callable[[], Awaitable[AnswerResult]],
    ) -> None:
        try:
            await run()
        except Exception as exc:
            if surface.shown:
                log_error(exc, "chat answer")  # the answer carries the note already
                return
            await surface.discard()
            await reply_error(interaction, exc, "chat answer")

    # ------------------------------------------------------------ messages

    async def answer_message(
        self,
        message: discord.Message,
        channel: discord.abc.Messageable,
        channel_id: int,
        request: ChatRequest,
        *,
        reply_to: discord.Message | None,
    ) -> None:
        surface = ChannelSurface(
            channel, channel_id, message.author.id, reply_to=reply_to, gate=self._pacing.gate
        )
        try:
            await self._core.chat.answer(request, self._view(surface, channel_id))
        except Exception as exc:
            log_error(exc, "chat answer to a message")
            if not surface.shown:
                # A message cannot get an ephemeral answer: reply briefly instead.
                text = user_text(exc)
                if isinstance(exc, InsufficientCredits) and message.guild is not None:
                    text = await self._credit_details(message, exc)
                await self._tell(message, channel, text)

    @staticmethod
    async def _credit_details(message: discord.Message, exc: InsufficientCredits) -> str:
        """Balances are private: the details by direct message, one short sentence in the channel."""
        try:
            await message.author.send(exc.user_message, allowed_mentions=NO_PINGS)
        except discord.HTTPException:
            return _(
                "{refusal} Use /credits to see your balance (only you will see it).",
                refusal=exc.public_message,
            )
        return _("{refusal} I sent you the details in a direct message.", refusal=exc.public_message)

    @staticmethod
    async def _tell(message: discord.Message, channel: discord.abc.Messageable, text: str) -> None:
        try:
            await channel.send(
                text, allowed_mentions=NO_PINGS, reference=message.to_reference(fail_if_not_exists=False)
            )
        except discord.HTTPException:
            logger.warning("could not tell the asker about an error", exc_info=True)

    # ------------------------------------------------------------ buttons

    async def stop(self, interaction: discord.Interaction, channel_id: int, asker_id: int) -> None:
        place = interaction_place(interaction)
        # Manage Server here, and BOT_ADMIN_IDS everywhere, may stop someone else's answer, which
        # may be streaming in another shard's process.
        is_admin = self._core.prefs.is_admin(interaction_actor(interaction))
        stopped = await self._core.chat.stop_anywhere(place, account(interaction.user), is_admin=is_admin)
        if stopped:
            await interaction.response.defer()  # the answer itself shows "Stopped."
        elif interaction.user.id != asker_id and not is_admin:
            raise NotAllowed(_("Only the person who asked, or an admin, can stop this answer."))
        else:
            await reply(interaction, _("That answer is already finished."), ephemeral=True)

    async def regenerate(self, interaction: discord.Interaction, channel_id: int, asker_id: int) -> None:
        if interaction.user.id != asker_id:
            raise NotAllowed(_("Only the person who asked can regenerate this answer."))
        place = interaction_place(interaction)
        await interaction.response.defer(thinking=True)
        asker = Account(place.platform, str(asker_id))
        surface = InteractionSurface(interaction, asker_id, window=self._config.interaction_window)
        view = self._view(surface, interaction.channel_id or channel_id)
        await self._run_interaction(
            interaction, surface, lambda: self._core.chat.regenerate(place, asker, view)
        )
