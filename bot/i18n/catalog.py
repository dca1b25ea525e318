"""The message catalogs and the language the current task speaks.

Catalogs are gettext ``.po`` files under ``locales/<language>/LC_MESSAGES/messages.po``, read with
Babel at first use and compiled in memory (no build step). English is the source language: the
msgids are the English sentences, so English needs no file.

Which language a sentence is rendered in is a context variable (each update an adapter handles runs
in its own task): a :class:`Voice` holds the community's language (``public``: what everyone in a
group sees) and the member's (``private``: direct and ephemeral replies). ``_()`` uses the public one
unless the code that sends privately entered :func:`privately`.

Adding a language: one ``.po`` file, and one line in :data:`LANGUAGES`.
"""

from __future__ import annotations

import gettext
import io
import string
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LOCALES = Path(__file__).parent / "locales"

# code -> (name in that language, the platform codes that mean it). One line a language.
LANGUAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "en": ("English", ("en",)),
    "tr": ("Türkçe", ("tr",)),
    "nb": ("Norsk bokmål", ("nb", "no", "nn")),
}
DEFAULT_LANGUAGE = "en"


def normalize(code: str | None, fallback: str | None = None) -> str | None:
    """A platform's locale code as one of ours: ``nb-NO``, ``no``, ``nn`` -> ``nb``; ``tr-TR`` -> ``tr``.

    Returns ``fallback`` for an empty or unknown code.
    """
    if not code:
        return fallback
    base = code.strip().lower().split(".", 1)[0].replace("_", "-").split("-", 1)[0]  # tr_TR.UTF-8 -> tr
    for language, (_name, aliases) in LANGUAGES.items():
        if base in aliases:
            return language
    return fallback


def language_name(code: str) -> str:
    return LANGUAGES[code][0] if code in LANGUAGES else code


@cache
def _translations(language: str) -> gettext.NullTranslations:
    path = LOCALES / language / "LC_MESSAGES" / "messages.po"
    if language == "en" or not path.is_file():
        return gettext.NullTranslations()
    with path.open("rb") as po:
        catalog = read_po(po, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)  # fuzzy entries are left out: an unreviewed translation falls back to English
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


# ---------------------------------------------------------------- the current language


@dataclass(frozen=True, slots=True)
class Voice:
    """The languages of one update: ``public`` for what the place sees, ``private`` for the member."""

    public: str = DEFAULT_LANGUAGE
    private: str = DEFAULT_LANGUAGE
    in_private: bool = False

    @property
    def language(self) -> str:
        return self.private if self.in_private else self.public


_voice: ContextVar[Voice | None] = ContextVar("bot_i18n_voice", default=None)
_default = [DEFAULT_LANGUAGE]  # the owner's DEFAULT_LANGUAGE, set once at start


def set_default_language(language: str) -> None:
    _default[0] = normalize(language, DEFAULT_LANGUAGE) or DEFAULT_LANGUAGE


def default_language() -> str:
    return _default[0]


def default_voice() -> Voice:
    """Nobody's choice known (a job resumed after a restart): the owner's DEFAULT_LANGUAGE."""
    return Voice(default_language(), default_language())


def current_voice() -> Voice:
    return _voice.get() or default_voice()


def current() -> str:
    voice = _voice.get()
    return default_language() if voice is None else voice.language


@contextmanager
def speaking(voice: Voice) -> Iterator[Voice]:
    """Render everything inside in ``voice``'s languages."""
    token = _voice.set(voice)
    try:
        yield voice
    finally:
        _voice.reset(token)


def set_voice(voice: Voice) -> None:
    """Set the task's voice for the rest of the task (an adapter's first handler of an update)."""
    _voice.set(voice)


@contextmanager
def privately() -> Iterator[None]:
    """Inside: sentences go to the member alone (a direct or ephemeral reply), in their language."""
    voice = _voice.get() or Voice(default_language(), default_language())
    token = _voice.set(replace(voice, in_private=True))
    try:
        yield
    finally:
        _voice.reset(token)


@contextmanager
def using(language: str) -> Iterator[None]:
    """Inside: everything in ``language`` (a notice for someone else, a registration per language)."""
    token = _voice.set(Voice(language, language))
    try:
        yield
    finally:
        _voice.reset(token)


# ---------------------------------------------------------------- translating


def translate(language: str, message: str, /, **values: Any) -> str:
    text = _translations(language).gettext(message)
    return text.format(**values) if values else text


def _(message: str, /, **values: Any) -> str:
    """``message`` (English, with ``{named}`` placeholders) in the current language, filled in."""
    return translate(current(), message, **values)


def n_(singular: str, plural: str, n: int, /, **values: Any) -> str:
    """The plural form for ``n`` in the current language; ``{n}`` is ``n`` unless given."""
    text = _translations(current()).ngettext(singular, plural, n)
    values.setdefault("n", n)
    return text.format(**values)


def translate_in(language: str, context: str, message: str) -> str:
    """``message`` of ``context`` (a gettext msgctxt: the same English word meaning another thing)."""
    return _translations(language).pgettext(context, message)


def C_(context: str, message: str, /) -> str:
    """Marks a word of a context for the catalog (``msgctxt``) without translating it now."""
    return message


def N_(message: str, /) -> str:
    """Marks a sentence for the catalog without translating it now (translated where it is shown)."""
    return message


def placeholders(text: str) -> frozenset[str]:
    """The ``{named}`` placeholders of a message (for the catalog tests)."""
    return frozenset(name for _lit, name, _spec, _conv in string.Formatter().parse(text) if name)
