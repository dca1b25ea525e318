"""Languages: the message catalogs (gettext ``.po`` through Babel), the current language, locale formats.

Every user-facing sentence is ``_("English text with {named} placeholders")`` or ``n_()`` for plurals;
:mod:`bot.i18n.choice` decides which language a member or a community hears.
"""

from bot.i18n.catalog import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    N_,
    Voice,
    _,
    current,
    language_name,
    n_,
    normalize,
    privately,
    set_default_language,
    set_voice,
    speaking,
    translate,
    using,
)
from bot.i18n.formats import decimal, integer, later, moment, number, ordinal, relative, until

__all__ = [
    "DEFAULT_LANGUAGE",
    "LANGUAGES",
    "N_",
    "Voice",
    "_",
    "current",
    "decimal",
    "integer",
    "language_name",
    "later",
    "moment",
    "n_",
    "normalize",
    "number",
    "ordinal",
    "privately",
    "relative",
    "set_default_language",
    "set_voice",
    "speaking",
    "translate",
    "until",
    "using",
]
