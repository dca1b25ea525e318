"""Which language is spoken, and how: normalizing platform codes, the order of the choices,
plural forms, the public and private voices, and numbers per locale."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.credits.money import format_amount
from bot.errors import RateLimited
from bot.i18n import (
    Voice,
    _,
    decimal,
    integer,
    later,
    moment,
    n_,
    normalize,
    ordinal,
    privately,
    relative,
    speaking,
    translate,
    until,
    using,
)
from bot.i18n.catalog import current, default_language, set_default_language
from bot.i18n.choice import Languages
from bot.ports import Account, Place
from tests.fakes.memory_store import MemoryStore

ALICE = Account("telegram", "1")
GROUP = Place("telegram", "-100")
PRIVATE = Place("telegram", "dm:1")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("nb", "nb"),
        ("no", "nb"),
        ("nn", "nb"),
        ("nb-NO", "nb"),
        ("nb_NO", "nb"),
        ("tr", "tr"),
        ("tr-TR", "tr"),
        ("tr_TR.UTF-8", "tr"),  # a shell's LANG, for the terminal
        ("C.UTF-8", None),
        ("en-US", "en"),
        ("EN-gb", "en"),
        ("fr", None),
        ("", None),
        (None, None),
    ],
)
def test_platform_codes_fall_back_to_our_languages(code: str | None, expected: str | None) -> None:
    assert expected == normalize(code)


def test_sentences_are_translated_and_filled_in() -> None:
    with using("tr"):
        assert "Bakiye: $5.00" == _("Balance: {amount}", amount="$5.00")
    with using("nb"):
        assert "Saldo: $5.00" == _("Balance: {amount}", amount="$5.00")
    assert "Balance: $5.00" == _("Balance: {amount}", amount="$5.00")  # no voice: DEFAULT_LANGUAGE (en)


def test_a_sentence_missing_from_a_catalog_stays_english() -> None:
    assert "Not in any catalog, {x}." == translate("tr", "Not in any catalog, {x}.")
    assert "Not in any catalog, 1." == translate("nb", "Not in any catalog, {x}.", x=1)


def test_plural_forms_follow_the_language() -> None:
    with using("nb"):
        assert ["1 minutt", "2 minutter"] == [n_("{n} minute", "{n} minutes", n) for n in (1, 2)]
    with using("tr"):  # Turkish does not mark the plural after a number
        assert ["1 dakika", "2 dakika"] == [n_("{n} minute", "{n} minutes", n) for n in (1, 2)]
    assert ["1 minute", "2 minutes"] == [n_("{n} minute", "{n} minutes", n) for n in (1, 2)]


def test_the_private_voice_speaks_the_members_language() -> None:
    with speaking(Voice(public="tr", private="nb")):
        assert "tr" == current()
        with privately():
            assert "Saldo: 1" == _("Balance: {amount}", amount=1)
        assert "Bakiye: 1" == _("Balance: {amount}", amount=1)


def test_default_language_is_the_last_word() -> None:
    try:
        set_default_language("no")
        assert "nb" == default_language() == current()
    finally:
        set_default_language("en")


def test_numbers_follow_the_locale_and_amounts_stay_in_dollars() -> None:
    micro = 1_234_500_000  # $1234.50
    assert ("12,345", "$1234.50") == (integer(12345), format_amount(micro))
    with using("tr"):
        assert ("12.345", "$1234,50", "0,5") == (integer(12345), format_amount(micro), decimal("0.5"))
        assert "1.500 kredi" == format_amount(1_500_000, credits_per_dollar=1000)
    with using("nb"):
        assert ("12\xa0345", "$1234,50") == (integer(12345), format_amount(micro))
        assert "1\xa0500 kreditter" == format_amount(1_500_000, credits_per_dollar=1000)
        assert "1 kreditt" == format_amount(1_000, credits_per_dollar=1000)


def test_relative_dates_and_places_in_line() -> None:
    assert ("in 3 hours", "3rd") == (relative(timedelta(hours=3)), ordinal(3))
    with using("tr"):
        assert ("3 saat sonra", "3.") == (relative(timedelta(hours=3)), ordinal(3))
    with using("nb"):
        assert ("om 3 timer", "3") == (relative(timedelta(hours=3)), ordinal(3))


async def test_the_members_choice_wins_then_the_community_then_the_hint() -> None:
    store = MemoryStore()
    languages = Languages(store)
    assert Voice("tr", "tr") == await languages.voice(ALICE, GROUP, "tr-TR")  # only the hint
    assert Voice("en", "en") == await languages.voice(ALICE, GROUP, "fr")  # unknown: DEFAULT_LANGUAGE
    await languages.set_community(GROUP, "tr")
    assert Voice("tr", "tr") == await languages.voice(ALICE, GROUP, "nb")  # the group's over the app's
    await languages.set_member(ALICE, "nb")
    # In the group: public notices in the group's language, Alice's own replies in hers.
    assert Voice(public="tr", private="nb") == await languages.voice(ALICE, GROUP, "en")
    assert Voice("nb", "nb") == await languages.voice(ALICE, PRIVATE, "en")
    await languages.set_member(ALICE, None)  # /language auto
    assert Voice("tr", "tr") == await languages.voice(ALICE, GROUP, "en")
    assert Voice("en", "en") == await languages.voice(ALICE, PRIVATE, "en")


def test_dates_follow_the_language() -> None:
    at = datetime(2026, 11, 23, 0, 0, tzinfo=UTC)
    assert "2026-11-23 00:00 UTC" == moment(at)
    with using("tr"):
        assert "23 Kas 2026 00:00 UTC" == moment(at)
    with using("nb"):
        assert "23. nov. 2026 00:00 UTC" == moment(at)


NOW = datetime(2026, 11, 22, 21, 0, tzinfo=UTC)  # a fixed clock


@pytest.mark.parametrize(
    ("ahead", "en", "tr", "nb"),
    [
        (timedelta(0), "in 1 second", "1 saniye sonra", "om 1 sekund"),
        (timedelta(seconds=80), "in 2 minutes", "2 dakika sonra", "om 2 minutter"),  # rounded up
        (timedelta(hours=2, minutes=10), "in 3 hours", "3 saat sonra", "om 3 timer"),
        (timedelta(hours=23, minutes=30), "in 1 day", "1 gün sonra", "om 1 døgn"),
        (timedelta(days=8, hours=12), "in 9 days", "9 gün sonra", "om 9 døgn"),  # days, not "1 week"
        (timedelta(days=30), "in 1 month", "1 ay sonra", "om 1 måned"),
    ],
)
def test_time_until_something_in_each_language(ahead: timedelta, en: str, tr: str, nb: str) -> None:
    said = {}
    for language in ("en", "tr", "nb"):
        with using(language):
            said[language] = until(NOW + ahead, NOW)
    assert {"en": en, "tr": tr, "nb": nb} == said
    with using("en"):
        assert en == later(ahead)  # the same for a length of time


def test_the_services_retry_after_is_said_in_words() -> None:
    """MiniToolAI's Retry-After (90 s) as "in 2 minutes"; without one, the general sentence."""
    busy = RateLimited("429", retry_after=90)
    assert "The AI service is busy (rate limited). Please try again in 2 minutes." == busy.user_message
    with using("tr"):
        assert busy.user_message.endswith("Lütfen 2 dakika sonra tekrar dene.")
    with using("nb"):
        assert busy.user_message.endswith("Prøv igjen om 2 minutter.")
    assert RateLimited("429").user_message.endswith("Please try again in a few seconds.")
