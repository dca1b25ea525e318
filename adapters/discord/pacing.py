"""How fast the bot edits and posts in one Discord channel, learned from Discord's own headers.

Discord does not document its message-edit budget (about 5 per 5 s per channel, observed); it
announces it on every answer in ``X-RateLimit-Limit`` and ``X-RateLimit-Reset-After``. A
:class:`RateBook` reads those headers from every REST answer (an ``aiohttp`` trace on the
client's session) and turns the message routes' limit into an interval with a safety margin.
:class:`ChannelPacing` keeps one token bucket per channel, shared by every answer shown there,
and retunes the buckets when the learned interval changes. discord.py's own bucket handling
(it sleeps before a depleted bucket) stays in place as the backstop.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from types import SimpleNamespace

import aiohttp

from bot.display.streaming import PacingPolicy, TokenBucket
from bot.ports import SharedLimits

logger = logging.getLogger(__name__)

MAX_MESSAGE = 2000
# Pace 2 % slower than the announced budget. Intervals count from each request's start, not its
# answer: discord.py holds the request that empties a bucket until Discord's window reopens
# (X-RateLimit-Reset-After), so counting from that answer would add the wait to the next interval
# (a 2 s gap every fifth edit, +0.12 s of median lag for 200 channels), while that same hold keeps
# a request sent early by latency jitter from reaching a closed window: no 429 either way. The 2 %
# covers clock granularity. (10 % cost 200 busy channels 0.1 s of median lag for nothing.)
MARGIN = 1.02
GLOBAL_PER_SECOND = 45  # Discord allows 50 requests a second per bot; keep a margin
MAX_CHANNELS = 10_000  # buckets kept; the least recently used channel's bucket is dropped
# REST routes whose budget paces an answer: channel messages, and interaction webhooks.
_PACED_ROUTES = {
    "message": re.compile(r"/channels/\d+/messages(?:/\d+)?$"),
    "webhook": re.compile(r"/webhooks/\d+/[^/]+(?:/messages/[^/]+)?$"),
}


class RateBook:
    """The message budget Discord announces, read from response headers."""

    def __init__(self, default_interval: float) -> None:
        self._interval = default_interval
        self._shapes: dict[str, tuple[int, float]] = {}  # route kind -> (limit, window)
        self._listeners: list[ChannelPacing] = []

    @property
    def interval(self) -> float:
        return self._interval

    def trace_config(self) -> aiohttp.TraceConfig:
        """For ``discord.Client(http_trace=...)``: every REST answer passes through ``observe``."""
        trace = aiohttp.TraceConfig()
        trace.on_request_end.append(self._on_request_end)
        return trace

    async def _on_request_end(
        self, session: aiohttp.ClientSession, context: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        for kind, route in _PACED_ROUTES.items():
            if route.search(params.url.path):
                self.observe(kind, params.response.headers)

    def observe(self, kind: str, headers: object) -> None:
        """Learn from one answer's ``X-RateLimit-Limit`` / ``-Reset-After`` (others are ignored)."""
        get = getattr(headers, "get", None)
        if get is None:
            return
        try:
            limit = int(get("X-RateLimit-Limit"))
            reset_after = float(get("X-RateLimit-Reset-After"))
        except (TypeError, ValueError):
            return
        if limit < 1:
            return
        # Reset-After is the time left in the current window; its largest value is the window.
        known = self._shapes.get(kind)
        window = max(known[1], reset_after) if known and known[0] == limit else reset_after
        self._shapes[kind] = (limit, window)
        # One bucket per channel carries every kind of request: pace by the tightest budget.
        interval = max(w / n for n, w in self._shapes.values()) * MARGIN
        if abs(interval - self._interval) > 1e-3:
            logger.info("Discord %s budget: %d per %.2fs; pacing at %.3fs", kind, limit, window, interval)
            self._interval = interval
            for pacing in self._listeners:
                pacing.retune(interval)

    def subscribe(self, pacing: ChannelPacing) -> None:
        self._listeners.append(pacing)


class GlobalGate:
    """Discord's bot-wide budget (50 requests a second), shared by every channel message written.

    Requests are spaced evenly a little under the limit. Interaction responses and follow-ups are
    outside Discord's global limit, so /chat answers never wait here; answers to mentions in many
    busy channels at once do, and their presenters coalesce the text meanwhile (fewer, fuller
    edits instead of 429s and a temporary ban).
    """

    def __init__(
        self,
        per_second: float = GLOBAL_PER_SECOND,
        shared: SharedLimits | None = None,
        name: str = "discord:global",
    ) -> None:
        self._spacing = 1 / per_second
        self._next_at = float("-inf")
        # Several shard processes (REDIS_URL): the bot-wide budget is booked in Redis by all of them.
        self._shared = shared
        self._name = name

    async def wait(self) -> None:
        if self._shared is not None:
            wait = await self._shared.reserve([(self._name, self._spacing)])
            if wait > 0:
                await asyncio.sleep(wait)  # our booked slot, whichever process books next
            return
        now = time.monotonic()
        at = max(now, self._next_at)
        self._next_at = at + self._spacing  # the slot is taken now, so callers queue in order
        if at > now:
            await asyncio.sleep(at - now)


class ChannelPacing:
    """One bucket per channel; every answer in a channel is paced by the same one."""

    def __init__(self, book: RateBook, gate: GlobalGate | None = None) -> None:
        self._book = book
        self._buckets: OrderedDict[int, TokenBucket] = OrderedDict()
        self.gate = gate or GlobalGate()
        book.subscribe(self)

    def policy(self) -> PacingPolicy:
        # One operation at a time: a burst on top of the full budget could overrun the window.
        return PacingPolicy(
            min_interval=self._book.interval, max_length=MAX_MESSAGE, burst=1, count_from_response=False
        )

    def bucket(self, channel_id: int) -> TokenBucket:
        bucket = self._buckets.get(channel_id)
        if bucket is None:
            bucket = self._buckets[channel_id] = TokenBucket(self.policy())
            if len(self._buckets) > MAX_CHANNELS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(channel_id)
        return bucket

    def retune(self, interval: float) -> None:
        for bucket in self._buckets.values():
            bucket.retune(interval)
