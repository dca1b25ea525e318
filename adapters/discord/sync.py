"""Publish the slash commands only when their definitions changed since the last publication.

The hash of the exact JSON Discord would receive is stored per application and target (the dev
guild or global) in the bot's settings store, so a restart with the same commands publishes
nothing, and several shard processes sharing one database publish once.
"""

from __future__ import annotations

import hashlib
import json
import logging

import discord
from discord import app_commands

from bot.ports import SettingsStore

logger = logging.getLogger(__name__)


async def definitions_hash(tree: app_commands.CommandTree, guild: discord.abc.Snowflake | None) -> str:
    """With a translator on the tree, its localizations are part of what Discord receives."""
    commands = tree.get_commands(guild=guild)
    translator = tree.translator
    if translator is None:
        payload = [command.to_dict(tree) for command in commands]
    else:
        payload = [await command.get_translated_payload(tree, translator) for command in commands]
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(raw.encode()).hexdigest()


async def sync_if_changed(
    tree: app_commands.CommandTree, store: SettingsStore, application_id: int, dev_guild_id: int | None
) -> bool:
    """Sync to ``dev_guild_id`` (at once) or globally; True if Discord was asked to."""
    guild = discord.Object(id=dev_guild_id) if dev_guild_id else None
    if guild is not None:
        tree.copy_global_to(guild=guild)
    key = f"discord.commands.{application_id}.{dev_guild_id or 'global'}"
    wanted = await definitions_hash(tree, guild)
    if await store.get_meta(key) == wanted:
        logger.info("slash commands unchanged; not syncing")
        return False
    synced = await tree.sync(guild=guild)
    await store.set_meta(key, wanted)
    logger.info(
        "synced %d slash commands %s", len(synced), f"to guild {dev_guild_id}" if guild else "globally"
    )
    return True
