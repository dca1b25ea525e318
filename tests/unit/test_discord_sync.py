"""The slash commands' sync hash covers everything Discord receives, command name localizations too."""

from __future__ import annotations

import discord
from discord import app_commands

from adapters.discord.language import CatalogTranslator
from adapters.discord.sync import definitions_hash


class RenamedInTurkish(CatalogTranslator):
    """The catalog, but with another Turkish name for /credits (a translator fixing a name)."""

    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        named = context.location is app_commands.TranslationContextLocation.command_name
        if named and locale is discord.Locale.turkish and string.message == "credits":
            return "krediler"
        return await super().translate(string, locale, context)


async def test_the_sync_hash_changes_with_a_command_name_localization() -> None:
    tree = app_commands.CommandTree(discord.Client(intents=discord.Intents.none()))

    @app_commands.command(name="credits", description="Your balance and spending.")
    async def credits(interaction: discord.Interaction) -> None:
        return None

    tree.add_command(credits)
    await tree.set_translator(CatalogTranslator())
    payload = await credits.get_translated_payload(tree, CatalogTranslator())
    assert {"tr": "kredi", "no": "kreditt"} == payload["name_localizations"]
    catalog = await definitions_hash(tree, None)
    assert catalog == await definitions_hash(tree, None)  # the same commands: the same hash
    await tree.set_translator(RenamedInTurkish())
    assert catalog != await definitions_hash(tree, None)
