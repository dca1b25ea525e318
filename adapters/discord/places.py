"""Who and where, in the core's terms: Discord users, guilds, channels, threads and DMs.

A guild's scope is its id and the channel (or thread) id is the channel, so each thread keeps
its own conversation; a DM's scope is ``"dm:<user id>"`` (no community pool there, and its one
member administers it).
"""

from __future__ import annotations

import discord

from bot.ports import Account, Actor, Place

PLATFORM = "discord"


def account(user: discord.abc.User) -> Account:
    return Account(PLATFORM, str(user.id))


def place_of(guild_id: int | None, channel_id: int, user_id: int, parent_id: int | None = None) -> Place:
    if guild_id is None:
        return Place(PLATFORM, f"dm:{user_id}", str(channel_id))
    return Place(PLATFORM, str(guild_id), str(channel_id), parent=str(parent_id) if parent_id else "")


def _parent_id(channel: object) -> int | None:
    """A thread's parent channel, whose settings the thread inherits."""
    return channel.parent_id if isinstance(channel, discord.Thread) else None


def interaction_place(interaction: discord.Interaction) -> Place:
    channel_id = interaction.channel_id or 0
    return place_of(interaction.guild_id, channel_id, interaction.user.id, _parent_id(interaction.channel))


def message_place(message: discord.Message) -> Place:
    guild_id = message.guild.id if message.guild is not None else None
    return place_of(guild_id, message.channel.id, message.author.id, _parent_id(message.channel))


def interaction_is_admin(interaction: discord.Interaction) -> bool:
    """Manage Server in this channel makes an admin; in a DM the person is."""
    if interaction.guild_id is None:
        return True
    return interaction.permissions.manage_guild


def member_is_admin(author: discord.abc.User) -> bool:
    if isinstance(author, discord.Member):
        return author.guild_permissions.manage_guild
    return True  # a DM: only its one member is there


def interaction_actor(interaction: discord.Interaction) -> Actor:
    return Actor(account(interaction.user), is_platform_admin=interaction_is_admin(interaction))
