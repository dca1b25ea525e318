"""Languages on Discord: the voice of each interaction and message, and the slash commands' translations.

An interaction carries the member's client language (``locale``): the hint for everything the
member reads. A message carries none; the server's ``preferred_locale`` stands in. The member's
own ``/language`` and the server's ``/language community`` come first (``bot.i18n.choice``).

:class:`CatalogTranslator`, installed on the command tree, gives every description, option
description and choice its Turkish (``tr``) and Norwegian (``no``) localization from the catalogs.
Option names are localized too (``OPTION_NAMES``, the catalog's "Discord option name" entries),
and so are command names (``COMMAND_NAMES``, "Discord command name"): a Turkish client shows
``/kredi`` for ``/credits``. The code keeps the English names (Discord sends the canonical name
in an interaction), and the help a member reads on Discord names the commands as their client
shows them (:func:`local_commands`); Telegram and the terminal keep the English names, since
Telegram's commands cannot be translated.
"""

from __future__ import annotations

import re

import discord
from discord import app_commands

from adapters.discord.places import account, interaction_place, message_place
from bot.core import Core
from bot.i18n import translate
from bot.i18n.catalog import C_, normalize, set_voice, translate_in

DESCRIPTION_LIMIT = 100  # characters of a description or a choice's name
_NAMES = frozenset(
    {
        app_commands.TranslationContextLocation.command_name,
        app_commands.TranslationContextLocation.group_name,
    }
)
COMMAND = "Discord command name"
# Every slash command's name (a test checks it is the tree's list): valid and unique per language.
COMMAND_NAMES = (
    C_("Discord command name", "chat"),
    C_("Discord command name", "imagine"),
    C_("Discord command name", "reset"),
    C_("Discord command name", "model"),
    C_("Discord command name", "system"),
    C_("Discord command name", "temperature"),
    C_("Discord command name", "context"),
    C_("Discord command name", "detail"),
    C_("Discord command name", "autothread"),
    C_("Discord command name", "language"),
    C_("Discord command name", "help"),
    C_("Discord command name", "credits"),
    C_("Discord command name", "usage"),
    C_("Discord command name", "prices"),
    C_("Discord command name", "chatmodels"),
    C_("Discord command name", "imagemodels"),
    C_("Discord command name", "grant"),
    C_("Discord command name", "take"),
    C_("Discord command name", "setbalance"),
    C_("Discord command name", "pool"),
    C_("Discord command name", "spending"),
    C_("Discord command name", "startinggrant"),
    C_("Discord command name", "allowance"),
    C_("Discord command name", "allow"),
    C_("Discord command name", "block"),
    C_("Discord command name", "unblock"),
    C_("Discord command name", "access"),
    C_("Discord command name", "disable"),
    C_("Discord command name", "enable"),
    C_("Discord command name", "replyall"),
)
_COMMAND_SET = frozenset(COMMAND_NAMES)
_SLASHED = re.compile(r"(?<![\w/])/([a-z]+)\b")
OPTION = "Discord option name"
# Every option name of the slash commands (a test checks none is missing): lowercase, one word.
OPTION_NAMES = (
    C_("Discord option name", "action"),
    C_("Discord option name", "amount"),
    C_("Discord option name", "cap"),
    C_("Discord option name", "community"),
    C_("Discord option name", "enabled"),
    C_("Discord option name", "language"),
    C_("Discord option name", "level"),
    C_("Discord option name", "mode"),
    C_("Discord option name", "models"),
    C_("Discord option name", "name"),
    C_("Discord option name", "period"),
    C_("Discord option name", "target"),
    C_("Discord option name", "text"),
    C_("Discord option name", "user"),
    C_("Discord option name", "value"),
    C_("Discord option name", "what"),
    C_("Discord option name", "prompt"),
    C_("Discord option name", "image"),
    C_("Discord option name", "model"),
    C_("Discord option name", "file"),
    C_("Discord option name", "size"),
    C_("Discord option name", "width"),
    C_("Discord option name", "height"),
    C_("Discord option name", "steps"),
    C_("Discord option name", "scheduler"),
    C_("Discord option name", "negative"),
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


def command_name(language: str, name: str) -> str:
    """A slash command's name as a ``language`` client shows it (``credits`` -> ``kredi`` in tr)."""
    return translate_in(language, COMMAND, name) if name in _COMMAND_SET else name


def local_commands(text: str, language: str) -> str:
    """``text`` with every ``/command`` of the tree named as a ``language`` client shows it."""
    return _SLASHED.sub(lambda m: "/" + command_name(language, m.group(1)), text)


class CatalogTranslator(app_commands.Translator):
    async def translate(
        self,
        string: app_commands.locale_str,
        locale: discord.Locale,
        context: app_commands.TranslationContextTypes,
    ) -> str | None:
        language = normalize(locale.value)
        if language is None or language == "en":
            return None
        if context.location in _NAMES:
            name = command_name(language, string.message)
            return None if name == string.message else name
        if context.location is app_commands.TranslationContextLocation.parameter_name:
            name = translate_in(language, OPTION, string.message)
            return None if name == string.message else name
        extras = dict(string.extras)
        template = str(extras.pop("template", string.message))
        text = translate(language, template, **extras)
        if text == template.format(**extras):
            return None  # not translated: Discord shows the default
        return text[:DESCRIPTION_LIMIT]
