"""How fast the bot edits and posts in one Discord channel, learned from Discord's own headers.

Discord does not document its message-edit budget (about 5 per 5 s per channel, observed); it
announces it on every answer in ``X-RateLimit-Limit`` and ``X-RateLimit-Reset-After``. A
:class:`RateBook` reads those headers from every REST answer (an ``aiohttp`` trace on the
client's session) and turns the message routes' limit into an interval with a safety margin.
:class:`ChannelPacing` keeps one token bucket per channel, shared by every answer shown there,
and retunes the buckets when the learned interval changes. discord.py's own bucket handling
(it sleeps before a depleted bucket) stays in place as the backstop. :class:`GlobalGate` shares
Discord's bot-wide budget between every channel, the most noticed requests first.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from types import SimpleNamespace

import aiohttp

from bot.display.streaming import PacingPolicy, TokenBucket, Urgency
from bot.ops import metrics
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
# Discord allows 50 requests a second per bot. The gate lets at most this many be in flight or
# answered less than a second ago. Every request under the limit takes a turn: those made
# without one (a command's reply, an error told in a channel, discord.py's own) and retries wait
# for theirs in the REST trace, so the gate's count is the whole truth and needs no margin.
GLOBAL_PER_SECOND = 50
GLOBAL_WINDOW = 1.0
# Several shard processes (REDIS_URL) book evenly spaced slots, one per 1/48 s: the spacing leaves
# two of Discord's fifty for the latency jitter between processes, which no shared count sees.
SHARED_PER_SECOND = 48
# A request whose answer the gate never heard of counts at most this long (a turn left unused).
MAX_FLIGHT = 30.0
TYPING_SHARE = 0.5  # "typing…" only while the gate is idle and at most this share of it is used
MAX_CHANNELS = 10_000  # buckets kept; the least recently used channel's bucket is dropped
# REST requests under Discord's global limit: all but interaction callbacks and webhook tokens.
_GLOBAL_ROUTE = re.compile(r"/api/v\d+/(?!interactions/|webhooks/)")
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
        if params.response.status == 429:  # every 429 Discord answers, also those discord.py retries
            metrics.rate_limited(_float(params.response.headers.get("Retry-After")), "discord")
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


class Ticket:
    """One request's place in the :class:`GlobalGate`: from its turn until a second after its answer."""

    __slots__ = ("_gate", "answered_at", "granted_at", "sent")

    def __init__(self, gate: GlobalGate, now: float) -> None:
        self._gate = gate
        self.granted_at = now
        self.answered_at: float | None = None
        self.sent = False  # its request left (a retry of it needs a turn of its own)

    def answered(self) -> None:
        """Discord's answer arrived (a retried request: its last answer counts)."""
        self.answered_at = self._gate.now()
        self._gate.changed()

    def close(self) -> None:
        """The request is over; with no answer seen (a connection error), count it from now."""
        if self.answered_at is None:
            self.answered()

    def until(self) -> float:
        """When this request stops counting against the budget."""
        if self.answered_at is None:
            return self.granted_at + MAX_FLIGHT
        return self.answered_at + self._gate.window


# The ticket of the request the current task is making: the REST trace marks its answer.
_in_flight: contextvars.ContextVar[Ticket | None] = contextvars.ContextVar(
    "discord_gate_ticket", default=None
)


class GlobalGate:
    """Discord's bot-wide budget (50 requests a second), shared by every channel message written.

    A request counts from its turn until ``window`` after its answer (read from the REST trace),
    and at most ``per_window`` count at once: whatever the latency, no second of Discord's ever
    sees more than that, and a burst (fifty channels' first messages at once) goes at once.
    Waiting turns are served by urgency (:class:`bot.display.streaming.Urgency`): first messages
    of new answers, then final texts, then intermediate edits, each ordered by its arrival plus
    its patience so no kind starves. Interaction responses and follow-ups are outside Discord's
    global limit, so /chat answers never wait here; answers to mentions in many busy channels
    at once do, and their presenters coalesce the text meanwhile (fewer, fuller edits instead of
    429s and a temporary ban).
    """

    def __init__(
        self,
        per_window: int = GLOBAL_PER_SECOND,
        window: float = GLOBAL_WINDOW,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        shared: SharedLimits | None = None,
        name: str = "discord:global",
    ) -> None:
        self.per_window = per_window
        self.window = window
        self.now = clock
        self._sleep = sleep
        self._counting: list[Ticket] = []
        self._queue: list[tuple[float, int, int, asyncio.Future[Ticket]]] = []
        self._order = itertools.count()
        self._changed = asyncio.Event()
        self._pump: asyncio.Task[None] | None = None
        # Several shard processes (REDIS_URL): besides this process's own order, every request
        # books its slot of the bot-wide budget in Redis, shared by all of them.
        self._shared = shared
        self._name = name

    def _free_at(self, now: float) -> float:
        """When the next request may go (``now`` if one may go now)."""
        self._counting = [t for t in self._counting if t.until() > now]
        if len(self._counting) < self.per_window:
            return now
        return min(t.until() for t in self._counting)

    def _grant(self, now: float) -> Ticket:
        ticket = Ticket(self, now)
        self._counting.append(ticket)
        return ticket

    def changed(self) -> None:
        self._changed.set()

    @property
    def waiting(self) -> int:
        """Requests waiting for a turn."""
        return sum(1 for *_, future in self._queue if not future.done())

    def trace(self, config: aiohttp.TraceConfig) -> aiohttp.TraceConfig:
        """Follow every REST request of the client: the answers of the gate's own (a request's
        second counts from there; discord.py may sit on an answer until a depleted bucket
        reopens), and the requests made without a turn, which wait for one before they leave
        (aiohttp awaits the trace before sending)."""
        config.on_request_start.append(self._on_request_start)
        config.on_request_end.append(self._on_request_over)
        config.on_request_exception.append(self._on_request_over)
        return config

    async def _on_request_start(
        self,
        session: aiohttp.ClientSession,
        context: SimpleNamespace,
        params: aiohttp.TraceRequestStartParams,
    ) -> None:
        ticket = _in_flight.get()
        if _GLOBAL_ROUTE.search(params.url.path):
            if ticket is None or ticket.sent:
                # Made without a turn, or discord.py retrying one: someone may be waiting on it.
                ticket = await self.wait(Urgency.FIRST)
            ticket.sent = True
        context.gate_ticket = ticket

    async def _on_request_over(
        self, session: aiohttp.ClientSession, context: SimpleNamespace, params: object
    ) -> None:
        ticket: Ticket | None = getattr(context, "gate_ticket", None)
        if ticket is not None:
            ticket.answered()

    async def wait(self, urgency: Urgency) -> Ticket:
        """Wait for a turn; make the request inside ``with making(ticket):``."""
        ticket = await self._turn(urgency)
        if self._shared is not None:
            try:
                delay = await self._shared.reserve([(self._name, self.window / SHARED_PER_SECOND)])
                if delay > 0:
                    await self._sleep(delay)  # our booked slot, whichever process books next
            except BaseException:
                ticket.close()
                raise
        return ticket

    async def _turn(self, urgency: Urgency) -> Ticket:
        now = self.now()
        if not self._queue and self._free_at(now) <= now:
            return self._grant(now)
        future: asyncio.Future[Ticket] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._queue, (now + urgency.patience, int(urgency), next(self._order), future))
        if self._pump is None or self._pump.done():
            self._pump = asyncio.create_task(self._serve(), name="discord-global-gate")
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                future.result().close()  # granted, but its request will never be made
            raise

    def try_now(self, share: float = TYPING_SHARE) -> Ticket | None:
        """A turn at once for a request nobody misses if it is skipped ("typing…"): only when
        nothing waits and at most ``share`` of the budget is used."""
        now = self.now()
        self._free_at(now)
        if self._queue or len(self._counting) >= self.per_window * share:
            return None
        return self._grant(now)

    async def _serve(self) -> None:
        while self._queue:
            now = self.now()
            at = self._free_at(now)
            if at <= now:
                *_, future = heapq.heappop(self._queue)
                if not future.done():  # a waiter cancelled meanwhile gets nothing
                    future.set_result(self._grant(now))
                continue
            # Until the oldest request stops counting, or an answer arrives (it starts a
            # request's last second, which may end before MAX_FLIGHT).
            self._changed.clear()
            changed = asyncio.ensure_future(self._changed.wait())
            slept = asyncio.ensure_future(self._sleep(at - now))
            try:
                await asyncio.wait({changed, slept}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
                slept.cancel()


@contextlib.contextmanager
def making(ticket: Ticket) -> Iterator[Ticket]:
    """The current task makes the request of ``ticket``: its answer is traced to it."""
    token = _in_flight.set(ticket)
    try:
        yield ticket
    finally:
        _in_flight.reset(token)
        ticket.close()


class ChannelPacing:
    """One bucket per channel; every answer in a channel is paced by the same one."""

    def __init__(self, book: RateBook, gate: GlobalGate | None = None) -> None:
        self._book = book
        self._buckets: OrderedDict[int, TokenBucket] = OrderedDict()
        self.gate = gate or GlobalGate()
        book.subscribe(self)

    def trace_config(self) -> aiohttp.TraceConfig:
        """For ``discord.Client(http_trace=...)``: the budgets are learned, the gate follows requests."""
        return self.gate.trace(self._book.trace_config())

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


def _float(text: str | None) -> float:
    """A header's number of seconds (Discord's Retry-After is whole seconds, rounded up)."""
    try:
        return float(text) if text else 0.0
    except ValueError:
        return 0.0
