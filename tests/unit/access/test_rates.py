"""Per-member rate limits: exact within one process, with a "please wait N seconds" refusal."""

from __future__ import annotations

import asyncio

from bot.access.rates import RateLimits, too_fast
from bot.errors import TooFast
from bot.i18n import using
from bot.ports import Account

ALICE = Account("telegram", "1")
BOB = Account("telegram", "2")


async def attempt(check: object) -> int | None:
    """None when let through, else the seconds the refusal asks to wait."""
    try:
        await check  # type: ignore[misc]
    except TooFast as exc:
        return exc.retry_after
    return None


async def test_concurrent_messages_pass_exactly_the_limit_per_member() -> None:
    """100 messages at once under 5 a minute: 5 pass, 95 wait between 1 and 60 seconds."""
    rates = RateLimits(messages_per_minute=5)

    results = await asyncio.gather(*(attempt(rates.check_chat(ALICE)) for _ in range(100)))

    assert 5 == results.count(None)
    waits = [r for r in results if r is not None]
    assert all(1 <= wait <= 60 for wait in waits)
    assert await attempt(rates.check_chat(BOB)) is None  # another member has their own window


async def test_the_refusal_says_when_to_try_again() -> None:
    """Over the hourly picture limit the sentence says how long to wait."""
    rates = RateLimits(images_per_hour=1)
    await rates.check_image(ALICE)

    try:
        await rates.check_image(ALICE)
    except TooFast as exc:
        assert str(exc).startswith("You can ask for up to 1 picture an hour here. Please try again in ")
        assert 1 <= exc.retry_after <= 3600
    else:
        raise AssertionError("the second picture of the hour was let through")


async def test_zero_means_no_limit_and_kinds_are_separate() -> None:
    """0 turns a limit off; chat and pictures count separately."""
    rates = RateLimits(messages_per_minute=0, images_per_hour=2)

    chats = await asyncio.gather(*(attempt(rates.check_chat(ALICE)) for _ in range(50)))
    images = await asyncio.gather(*(attempt(rates.check_image(ALICE)) for _ in range(3)))

    assert [None] * 50 == chats
    assert 2 == images.count(None)


def test_the_wait_is_said_in_the_members_language_and_never_too_short() -> None:
    """80 seconds is "in 2 minutes" (rounded up), in English, Turkish and Norwegian; plurals by the limit."""
    assert "You can send up to 5 messages a minute here. Please try again in 2 minutes." == too_fast(
        "chat", 5, 80
    )
    assert "You can ask for up to 1 picture an hour here. Please try again in 45 minutes." == too_fast(
        "images", 1, 2700
    )
    with using("tr"):
        assert "Burada dakikada en fazla 5 mesaj gönderebilirsin. Lütfen 45 saniye sonra tekrar dene." == (
            too_fast("chat", 5, 45)
        )
    with using("nb"):
        assert "Du kan be om opptil 1 bilde i timen her. Prøv igjen om 1 time." == too_fast("images", 1, 3100)
        assert "Du kan sende opptil 5 meldinger i minuttet her. Prøv igjen om 2 minutter." == too_fast(
            "chat", 5, 80
        )
