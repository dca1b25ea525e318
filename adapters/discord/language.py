"""Languages on Discord: the voice of each interaction and message, and the slash commands' translations.

An interaction carries the member's client language (``locale``): the hint for everything the
member reads. A message carries none; the server's ``preferred_locale`` stands in. The member's
own ``/language`` and the server's ``/language community`` come first (``bot.i18n.choice``).

:class:`CatalogTranslator`, installed on the command tree, gives every description, option
description and choice its Turkish (``tr``) and Norwegian (``no``) localization from the catalogs.
Command and option names stay the same in every language: they are what the help and the
members' habits refer to.
"""

from __future__ import annotations

import discord
from discord import app_commands

from adapters.discord.places import account, interaction_place, message_place
from bot.core import Core
from bot.i18n import translate
from bot.i18n.catalog import normalize, set_voice

DESCRIPTION_LIMIT = 100  # characters of a description or a choice's name
_NAMES = frozenset(
    {
        app_commands.TranslationContextLocation.command_name,
        app_commands.TranslationContextLocation.group_name,
        app_commands.TranslationContextLocation.parameter_name,
    }
)


async def speak_interaction(core: Core, interaction: discord.Interaction) -> None:
    hint = interaction.locale.value if interaction.locale else None
    place = interaction_place(interaction)
    set_voice(await core.commands.languages.voice(account(interaction.user), place, hint))


async def speak_message(core: Core, message: discord.Message) -> None:
    guild = message.guild
    hint = guild.preferred_locale.value if guild is not None and guild.preferred_locale else None
    set_voice(await core.commands.languages.voice(account(message.author), message_place(message), hint))


def described(template: str, **values: object) -> app_commands.locale_str:
    """A description with values (``"Steps ({low}-{high})"``): shown filled in, translated by template."""
    return app_commands.locale_str(template.format(**values), template=template, **values)


class CatalogTranslator(app_commands.Translator):
    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        if context.location in _NAMES:
            return None
        language = normalize(locale.value)
        if language is None or language == "en":
            return None
        extras = dict(string.extras)
        template = str(extras.pop("template", string.message))
        text = translate(language, template, **extras)
        if text == template.format(**extras):
            return None  # not translated: Discord shows the default
        return text[:DESCRIPTION_LIMIT]
