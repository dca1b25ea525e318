"""How fast the bot may post in each Telegram chat, shared by everything it posts there.

Telegram allows about one message per second in a chat and twenty per minute in a group (edits
count too), and answers 429 with ``retry_after`` beyond that. One :class:`TokenBucket` per chat
is shared by every streaming answer and every one-off reply in that chat, so two answers in one
group together stay within the group's budget, and a ``retry_after`` holds the whole chat.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import heapq
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from telegram.error import RetryAfter
from telegram.ext import BaseRateLimiter

from bot.display.streaming import PacingPolicy, TokenBucket
from bot.errors import PlatformRateLimited
from bot.ports import SharedLimits

__all__ = ["MAX_MESSAGE", "BotWideLimiter", "ChatPacing", "retry_seconds", "settling"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

MAX_MESSAGE = 4096  # characters of visible text in one message
PRIVATE_INTERVAL = 1.0  # seconds between operations in a private chat
GROUP_INTERVAL = 3.0  # 60 s / 20 messages: a group's per-minute budget, spread evenly
REPLY_ATTEMPTS = 5  # a one-off reply waits out this many retry_after answers before giving up
MAX_TRACKED_CHATS = 10_000  # buckets of quiet chats are forgotten beyond this many
BOT_WIDE_PER_SECOND = 30  # Telegram's limit on messages a bot sends, all chats together
SHARED_MARGIN = 1.15  # shared budgets' intervals, widened for the latency between booking and arrival
# Requests the bot-wide limit does not count: they post no message (see BotWideLimiter).
UNCOUNTED = frozenset(
    {"sendMessageDraft", "sendChatAction", "getChat", "getChatMember", "getChatAdministrators", "getFile"}
)
# When the bot-wide window is full, lower goes first: new text, then text that only becomes
# permanent (see settling), then button swaps.
SHOWS_NEW_TEXT, SETTLES, SWAPS_BUTTONS = 0, 1, 2
LOW_PRIORITY = {"editMessageReplyMarkup": SWAPS_BUTTONS}
_priority: contextvars.ContextVar[int] = contextvars.ContextVar("telegram_priority", default=SHOWS_NEW_TEXT)


@contextmanager
def settling() -> Iterator[None]:
    """Around requests that show nothing new, such as sending a draft's text for real: when the
    bot-wide window is full they wait behind requests that show new words (in this task)."""
    token = _priority.set(SETTLES)
    try:
        yield
    finally:
        _priority.reset(token)


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
        self.private = PacingPolicy(
            min_interval=PRIVATE_INTERVAL * scale, max_length=MAX_MESSAGE, measure=utf16_length
        )
        self.group = PacingPolicy(
            min_interval=GROUP_INTERVAL * scale, max_length=MAX_MESSAGE, measure=utf16_length
        )
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
    """Telegram's bot-wide 30 messages a second, for every request that posts or changes one.

    Telegram counts messages arriving in any one second, so this is a sliding window, not a
    token bucket (a bucket's burst followed by its steady rate puts twice the limit into one
    second). A request holds its place in the window from when it is sent until ``window``
    seconds after its answer came back: Telegram saw it before we saw the answer, so the window
    there is never more crowded than here, whatever the latency.

    Grants are spaced evenly (``window / limit`` apart). When the window is full, waiting
    requests go by priority, then in order: new words first, then text that only becomes
    permanent (:func:`settling`), then button swaps (``editMessageReplyMarkup``), so that when
    many answers end together, the words still unseen in groups do not queue behind the final
    messages and Regenerate buttons of a hundred private chats.

    Drafts (``sendMessageDraft``) and chat actions post no message and are not counted: with a
    hundred private chats streaming, drafts at one a second each would otherwise take the whole
    budget from the groups. Reads (``getChatMember`` and the like) are not counted either.

    python-telegram-bot's ``AIORateLimiter`` also logs every ``RetryAfter`` it passes on as an
    error with a traceback; here a ``RetryAfter`` is routine (the presenter waits it out), so it
    goes back to the caller silently.
    """

    def __init__(
        self,
        scale: float = 1.0,
        per_second: int = BOT_WIDE_PER_SECOND,
        shared: SharedLimits | None = None,
        namespace: str = "telegram",
    ) -> None:
        # Several processes (REDIS_URL): the per-chat, per-group and bot-wide budgets are also
        # booked in Redis, so N workers together stay within what one bot may send.
        self._shared = shared
        self._namespace = namespace
        self._scale = scale
        self._window = scale  # seconds: Telegram's one second, scaled for tests
        self._limit = per_second
        # Grants spread evenly, not in bursts of the whole window: a burst fills the window at
        # once and empties it at once, and a new answer's words arriving just after wait a second.
        self._spacing = scale / per_second
        self._next_at = float("-inf")
        self._in_flight = 0
        self._recent: collections.deque[float] = collections.deque()  # answer times within the window
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []  # heap: (priority, order, grant)
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def process_request(
        self,
        callback: Callable[..., Awaitable[bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
        endpoint: str,
        data: dict[str, Any],
        rate_limit_args: None,
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        if "chat_id" not in data or endpoint in UNCOUNTED:
            return await callback(*args, **kwargs)
        await self._acquire(max(_priority.get(), LOW_PRIORITY.get(endpoint, SHOWS_NEW_TEXT)))
        try:
            if self._shared is None:
                return await callback(*args, **kwargs)
            return await self._shared_call(data["chat_id"], callback, args, kwargs)
        finally:
            self._release()

    def _budgets(self, chat_id: object) -> list[tuple[str, float]]:
        """Telegram's limits as shared budgets, a little wider than the limits themselves: a slot
        booked in Redis reaches Telegram after a latency that varies between processes."""
        scale, margin = self._scale, SHARED_MARGIN
        budgets = [
            (f"{self._namespace}:bot", scale / BOT_WIDE_PER_SECOND * margin),
            (f"{self._namespace}:chat:{chat_id}", PRIVATE_INTERVAL * scale * margin),
        ]
        if not (isinstance(chat_id, int) and chat_id > 0):  # groups and channels: 20 a minute
            budgets.append((f"{self._namespace}:group:{chat_id}", GROUP_INTERVAL * scale * margin))
        return budgets

    async def _shared_call(
        self,
        chat_id: object,
        callback: Callable[..., Awaitable[bool | dict[str, Any] | list[dict[str, Any]]]],
        args: Any,
        kwargs: dict[str, Any],
    ) -> bool | dict[str, Any] | list[dict[str, Any]]:
        assert self._shared is not None
        wait = await self._shared.reserve(self._budgets(chat_id))
        if wait > 0:
            await asyncio.sleep(wait)  # our booked slot in every budget, whichever process books next
        try:
            return await callback(*args, **kwargs)
        except RetryAfter as exc:
            await self._shared.hold(f"{self._namespace}:chat:{chat_id}", retry_seconds(exc))
            raise

    async def _acquire(self, priority: int) -> None:
        self._expire(time.monotonic())
        now = time.monotonic()
        if not self._waiting and self._room() > 0 and now >= self._next_at:
            self._in_flight += 1
            self._next_at = now + self._spacing
            return
        grant: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiting, (priority, next(self._order), grant))
        self._grant()
        try:
            await grant
        except asyncio.CancelledError:
            if grant.done() and not grant.cancelled():
                self._release()  # granted just as we were cancelled: give the place back
            raise

    def _release(self) -> None:
        self._in_flight -= 1
        self._recent.append(time.monotonic())
        self._grant()

    def _room(self) -> int:
        return self._limit - self._in_flight - len(self._recent)

    def _expire(self, now: float) -> None:
        while self._recent and self._recent[0] <= now - self._window:
            self._recent.popleft()

    def _grant(self) -> None:
        """Let waiting requests go while the window has room; otherwise wake when it has."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._expire(time.monotonic())
        now = time.monotonic()
        while self._waiting and self._room() > 0 and now >= self._next_at:
            _, _, grant = heapq.heappop(self._waiting)
            if not grant.done():  # a cancelled waiter has left
                self._in_flight += 1
                self._next_at = now + self._spacing
                grant.set_result(None)
        if not self._waiting:
            return
        if self._room() > 0:
            wake = self._next_at
        elif self._recent:
            # Full: the oldest answer leaves the window first.
            wake = max(self._next_at, self._recent[0] + self._window)
        else:
            return  # every place is in flight: a release wakes us
        self._timer = asyncio.get_running_loop().call_later(max(0.0, wake - now), self._grant)


def utf16_length(text: str) -> int:
    """Telegram counts a message's 4096 in UTF-16 code units: an emoji is two."""
    return len(text.encode("utf-16-le")) // 2
