"""How fast the bot may post in each Telegram chat, shared by everything it posts there.

Telegram allows about one message per second in a chat and twenty per minute in a group (edits
count too), and answers 429 with ``retry_after`` beyond that. One :class:`TokenBucket` per chat
is shared by every streaming answer and every one-off reply in that chat, so two answers in one
group together stay within the group's budget, and a ``retry_after`` holds the whole chat.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from bot.errors import PlatformRateLimited
from bot.streaming import PacingPolicy, TokenBucket

__all__ = ["MAX_MESSAGE", "BotWideLimiter", "ChatPacing", "retry_seconds"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_MESSAGE = 4096  # characters of visible text in one message
PRIVATE_INTERVAL = 1.0  # seconds between operations in a private chat
GROUP_INTERVAL = 3.0  # 60 s / 20 messages: a group's per-minute budget, spread evenly
REPLY_ATTEMPTS = 5  # a one-off reply waits out this many retry_after answers before giving up
MAX_TRACKED_CHATS = 10_000  # buckets of quiet chats are forgotten beyond this many
BOT_WIDE_PER_SECOND = 30  # Telegram's limit on messages a bot sends, all chats together


def retry_seconds(error: RetryAfter) -> float:
    """``retry_after`` in seconds (a timedelta with ``PTB_TIMEDELTA``, else a number)."""
    value = error.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


@dataclass(slots=True)
class _Chat:
    bucket: TokenBucket
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    done_at: float = float("-inf")  # when the chat's last request completed


class ChatPacing:
    """The pacing policies for private chats and groups, and one token bucket per chat.

    The bucket sets the rate. On top of it, :meth:`spaced` keeps requests in one chat from
    overlapping: two answers streaming in one group could otherwise each send as soon as the
    bucket allows while the other's request is still on its way, and arrive at Telegram closer
    together than its per-chat limit.
    """

    def __init__(self, scale: float = 1.0) -> None:
        # ``scale`` shrinks every interval, for tests against a fake server with scaled limits.
        self.private = PacingPolicy(min_interval=PRIVATE_INTERVAL * scale, max_length=MAX_MESSAGE)
        self.group = PacingPolicy(min_interval=GROUP_INTERVAL * scale, max_length=MAX_MESSAGE)
        self._spacing = PRIVATE_INTERVAL * scale  # Telegram's per-chat limit, in any chat
        self._chats: OrderedDict[int, _Chat] = OrderedDict()

    def policy(self, chat_id: int) -> PacingPolicy:
        # Telegram gives private chats positive ids (the user's) and groups negative ones.
        return self.private if chat_id > 0 else self.group

    def bucket(self, chat_id: int) -> TokenBucket:
        return self._chat(chat_id).bucket

    def _chat(self, chat_id: int) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = _Chat(TokenBucket(self.policy(chat_id)))
            while len(self._chats) > MAX_TRACKED_CHATS:
                self._chats.popitem(last=False)
        else:
            self._chats.move_to_end(chat_id)
        return chat

    @asynccontextmanager
    async def spaced(self, chat_id: int) -> AsyncIterator[None]:
        """Around one request that posts or edits in a chat: one at a time, a per-chat interval
        after the previous one completed."""
        chat = self._chat(chat_id)
        async with chat.lock:
            while (wait := chat.done_at + self._spacing - time.monotonic()) > 0:  # noqa: ASYNC110
                await asyncio.sleep(wait)
            try:
                yield
            finally:
                chat.done_at = time.monotonic()

    async def once(self, chat_id: int, call: Callable[[], Awaitable[T]]) -> T:
        """One request in this chat, within its budget; ``retry_after`` holds the chat and is raised
        as :class:`PlatformRateLimited` for the caller to retry."""
        bucket = self.bucket(chat_id)
        # Sleep exactly until the bucket has a token (a timer may fire a hair early, hence the loop).
        while (wait := bucket.delay()) > 0:  # noqa: ASYNC110 - waiting on time itself, not on an event
            await asyncio.sleep(wait)
        bucket.take()
        try:
            async with self.spaced(chat_id):
                return await call()
        except RetryAfter as exc:
            bucket.hold(retry_seconds(exc))
            raise PlatformRateLimited(retry_seconds(exc)) from exc
        finally:
            bucket.touch()

    async def run(self, chat_id: int, call: Callable[[], Awaitable[T]]) -> T:
        """Like :meth:`once`, but ``retry_after`` is waited out and the request retried."""
        for attempt in range(1, REPLY_ATTEMPTS + 1):
            try:
                return await self.once(chat_id, call)
            except PlatformRateLimited as exc:
                logger.info("chat %s rate limited (try %d); waiting %.2fs", chat_id, attempt, exc.retry_after)
                self.bucket(chat_id).hold(exc.retry_after)
        raise PlatformRateLimited(0.0, f"chat {chat_id} stayed rate limited")


class BotWideLimiter(BaseRateLimiter[None]):
    """Telegram's bot-wide 30 requests a second, for every request addressed to a chat.

    python-telegram-bot's ``AIORateLimiter`` does this too, but logs every ``RetryAfter`` it
    passes on as an error with a traceback; here a ``RetryAfter`` is routine (the presenter
    waits it out), so it goes back to the caller silently.
    """

    def __init__(self, scale: float = 1.0) -> None:
        policy = PacingPolicy(
            min_interval=scale / BOT_WIDE_PER_SECOND, max_length=MAX_MESSAGE, burst=BOT_WIDE_PER_SECOND
        )
        self._bucket = TokenBucket(policy)

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def process_request(
        self,
        callback: Callable[..., Awaitable[bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        if "chat_id" in data:
            while (wait := self._bucket.delay()) > 0:  # noqa: ASYNC110 - waiting on time itself
                await asyncio.sleep(wait)
            self._bucket.take()
        return await callback(*args, **kwargs)
