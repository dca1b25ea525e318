"""How fast: USER_MESSAGES_PER_MINUTE and USER_IMAGES_PER_HOUR, per member, with the ``limits`` library.

A moving window per member and kind: over the limit, ``TooFast`` says how many seconds until a
request fits again, and the caller sends nothing upstream. The storage is in memory, so the
limits are exact within one process (each key's check-and-count runs under one lock); a shared
storage (Redis) makes them exact across processes without changing this module's callers.
"""

from __future__ import annotations

import math
import time

from limits import RateLimitItem, RateLimitItemPerHour, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from bot.errors import TooFast
from bot.i18n import n_
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
        raise TooFast(
            n_(
                "You can send up to {limit} messages a minute here. Please wait {n} second and try again.",
                "You can send up to {limit} messages a minute here. Please wait {n} seconds and try again.",
                wait,
                limit=item.amount,
            )
            if kind == "chat"
            else n_(
                "You can send up to {limit} pictures an hour here. Please wait {n} second and try again.",
                "You can send up to {limit} pictures an hour here. Please wait {n} seconds and try again.",
                wait,
                limit=item.amount,
            ),
            retry_after=wait,
        )
