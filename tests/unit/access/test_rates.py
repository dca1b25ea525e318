"""Per-member rate limits: exact within one process, with a "please wait N seconds" refusal."""

from __future__ import annotations

import asyncio

from bot.access.rates import RateLimits
from bot.errors import TooFast
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


async def test_the_refusal_asks_to_wait_a_number_of_seconds() -> None:
    """Over the hourly picture limit the sentence says how long to wait."""
    rates = RateLimits(images_per_hour=1)
    await rates.check_image(ALICE)

    try:
        await rates.check_image(ALICE)
    except TooFast as exc:
        assert f"Please wait {exc.retry_after} seconds" in str(exc)
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
