"""How fast: USER_MESSAGES_PER_MINUTE and USER_IMAGES_PER_HOUR, per member, with the ``limits`` library.

A moving window per member and kind: over the limit, ``TooFast`` says how many seconds until a
request fits again, and the caller sends nothing upstream. The storage is in memory, so the
limits are exact within one process (each key's check-and-count runs under one lock); a shared
storage (Redis) makes them exact across processes without changing this module's callers.
"""

from __future__ import annotations

import math
import time
from datetime import timedelta

from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from bot.errors import TooFast
from bot.i18n import later, n_
from bot.ports import Account


class RateLimits:
    """Per-member limits on chat requests (per minute) and pictures (per hour); 0 = off."""

    def __init__(
        self, *, messages_per_minute: int = 0, images_per_hour: int = 0, storage: Storage | None = None
    ) -> None:
        self._storage = storage or MemoryStorage()
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._chat = RateLimitItemPerMinute(messages_per_minute) if messages_per_minute > 0 else None
        self._images = RateLimitItemPerHour(images_per_hour) if images_per_hour > 0 else None

    async def check_chat(self, user: Account) -> None:
        """Count one chat request, or raise ``TooFast`` (not counted)."""
        await self._check(self._chat, "chat", user)

    async def check_image(self, user: Account) -> None:
        """Count one picture request, or raise ``TooFast`` (not counted)."""
        await self._check(self._images, "images", user)

    async def _check(self, item: RateLimitItem | None, kind: str, user: Account) -> None:
        if item is None or await self._limiter.hit(item, kind, user.platform, user.holder):
            return
        stats = await self._limiter.get_window_stats(item, kind, user.platform, user.holder)
        wait = max(1, math.ceil(stats.reset_time - time.time()))
        raise TooFast(too_fast(kind, item.amount, wait), retry_after=wait)


def too_fast(kind: str, limit: int, wait: int) -> str:
    """The refusal of a request over the limit: the limit, and when to try again in words."""
    relative = later(timedelta(seconds=wait))
    if kind == "chat":
        return n_(
            "You can send up to {n} message a minute here. Please try again {relative}.",
            "You can send up to {n} messages a minute here. Please try again {relative}.",
            limit,
            relative=relative,
        )
    return n_(
        "You can ask for up to {n} picture an hour here. Please try again {relative}.",
        "You can ask for up to {n} pictures an hour here. Please try again {relative}.",
        limit,
        relative=relative,
    )
