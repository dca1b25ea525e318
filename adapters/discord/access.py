"""Who and where on Discord: the access gate for messages, slash commands and buttons, and the
access commands.

Every way in asks the core once, before any other work: a slash command through the command
tree's ``interaction_check``, a button through its item's ``interaction_check``, a message in
``MessageFlows``. A refused slash command or button is answered ephemerally; a refused DM gets one
short sentence; a server channel hears once that the bot is not enabled there, then nothing.
A member's roles come from the member object Discord sends with each event.

Owners (``BOT_ADMIN_IDS``) use ``/allow``, ``/block``, ``/unblock`` and ``/access``; members with
Manage Server use ``/disable``, ``/enable`` (chat or images) and ``/replyall`` per channel.
"""

from __future__ import annotations

import logging

import discord
from discord import app_commands

from adapters.discord.language import speak_interaction, speak_message
from adapters.discord.places import PLATFORM, account, interaction_actor, interaction_place, message_place
from adapters.discord.replies import NO_PINGS, guarded, reply
from bot.access.policy import Asker
from bot.core import Core
from bot.errors import ValidationError
from bot.i18n import N_, _, privately

logger = logging.getLogger(__name__)

ADMIN = app_commands.default_permissions(manage_guild=True)
WHAT = [
    app_commands.Choice(name=N_("user"), value="user"),
    app_commands.Choice(name=N_("server"), value="server"),
    app_commands.Choice(name=N_("channel"), value="channel"),
    app_commands.Choice(name=N_("role"), value="role"),
]
SWITCHES = [
    app_commands.Choice(name=N_("chat"), value="chat"),
    app_commands.Choice(name=N_("images"), value="images"),
]


def member_roles(user: discord.abc.User) -> tuple[str, ...]:
    """The member's role ids in this server (none in a DM)."""
    if isinstance(user, discord.Member):
        return tuple(str(role.id) for role in user.roles if not role.is_default())
    return ()


class AccessGate:
    def __init__(self, core: Core) -> None:
        self._core = core

    async def admit_interaction(self, interaction: discord.Interaction) -> bool:
        """Slash commands and buttons: True to go on; False after an ephemeral refusal.

        Every interaction passes here first, so this is also where its languages are chosen."""
        await speak_interaction(self._core, interaction)
        access = self._core.access
        if not access.configured or interaction.type is discord.InteractionType.autocomplete:
            return True
        place = interaction_place(interaction)
        decision = access.check(Asker(account(interaction.user), place, member_roles(interaction.user)))
        if decision.allowed:
            return True
        logger.info(
            "refused %s in %s/%s: %s", interaction.user.id, place.scope, place.channel, decision.reason
        )
        try:
            with privately():
                await reply(interaction, decision.sentence, ephemeral=True)
        except discord.HTTPException:
            logger.warning("could not tell a refused user why", exc_info=True)
        return False

    async def admit_message(self, message: discord.Message) -> bool:
        """A message for the bot: True to answer it; False after the refusal (said once per channel)."""
        await speak_message(self._core, message)
        access = self._core.access
        if not access.configured:
            return True
        place = message_place(message)
        decision = access.check(Asker(account(message.author), place, member_roles(message.author)))
        if decision.allowed:
            return True
        logger.info("refused %s in %s/%s: %s", message.author.id, place.scope, place.channel, decision.reason)
        if access.tell_refusal(place, account(message.author), decision):
            await say(message, decision.sentence)
        return False


async def say(message: discord.Message, text: str) -> None:
    """A short reply to a message, pinging nobody."""
    try:
        await message.channel.send(
            text, allowed_mentions=NO_PINGS, reference=message.to_reference(fail_if_not_exists=False)
        )
    except discord.HTTPException:
        logger.warning("could not send a short reply", exc_info=True)


def access_commands(core: Core) -> list[app_commands.Command]:
    access = core.access

    async def show(interaction: discord.Interaction, text: str, *, private: bool = False) -> None:
        await reply(interaction, text, ephemeral=private)

    def rule_command(verdict: str, description: str) -> app_commands.Command:
        @app_commands.command(name=verdict, description=description)
        @app_commands.describe(
            what=N_("A user, a server, a channel (a thread counts as its channel) or a role"),
            target=N_("The id or a mention; for a server or channel, nothing means this one"),
        )
        @app_commands.choices(what=WHAT)
        @ADMIN
        async def run(interaction: discord.Interaction, what: str, target: str | None = None) -> None:
            async def work() -> None:
                subject = target or _here(interaction, what)
                said = await access.set_rule(interaction_actor(interaction), verdict, what, subject, PLATFORM)
                await show(interaction, said, private=True)

            await guarded(interaction, work(), f"/{verdict}")

        return run

    @app_commands.command(name="access", description=N_("Who may use the bot (bot owner)."))
    @ADMIN
    async def list_access(interaction: discord.Interaction) -> None:
        async def work() -> None:
            await show(interaction, access.describe(interaction_actor(interaction)), private=True)

        await guarded(interaction, work(), "/access")

    def switch_command(name: str, on: bool) -> app_commands.Command:
        @app_commands.command(
            name=name,
            description=N_("Enable chat or pictures in this channel.")
            if on
            else N_("Disable chat or pictures in this channel."),
        )
        @app_commands.choices(what=SWITCHES)
        @app_commands.guild_only()
        @ADMIN
        async def run(interaction: discord.Interaction, what: str) -> None:
            async def work() -> None:
                actor, place = interaction_actor(interaction), interaction_place(interaction)
                await show(interaction, await access.switch(actor, place, what, on=on))

            await guarded(interaction, work(), f"/{name}")

        return run

    @app_commands.command(
        name="replyall", description=N_("Answer every message in this channel, or only when addressed.")
    )
    @app_commands.guild_only()
    @ADMIN
    async def reply_all(interaction: discord.Interaction, enabled: bool) -> None:
        async def work() -> None:
            actor, place = interaction_actor(interaction), interaction_place(interaction)
            await show(interaction, await access.set_reply_all(actor, place, enabled))

        await guarded(interaction, work(), "/replyall")

    return [
        rule_command("allow", N_("Let a user, server, channel or role use the bot (bot owner).")),
        rule_command("block", N_("Refuse a user, server or channel; a block always wins (bot owner).")),
        rule_command("unblock", N_("Lift a block, or forget an allow made by command (bot owner).")),
        list_access,
        switch_command("disable", on=False),
        switch_command("enable", on=True),
        reply_all,
    ]


def _here(interaction: discord.Interaction, what: str) -> str:
    if what == "server" and interaction.guild_id is not None:
        return str(interaction.guild_id)
    if what == "channel" and interaction.channel_id is not None:
        return str(interaction.channel_id)
    raise ValidationError(_("Give the id or mention of the {what} in target.", what=what))
