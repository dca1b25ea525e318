"""The streaming presenter: answer deltas in, paced sends and edits on a platform Surface out.

The conversation service pushes every token delta with :meth:`StreamPresenter.append` (cheap: the
delta is only kept). A background flusher shows the newest text by editing the last message as soon
as the chat's token bucket allows, coalescing every delta since the previous edit; intermediate
texts carry a typing indicator and have their markup closed. When the text outgrows a message, the
message is finalised at a good split point and the answer continues in a new one.
:meth:`StreamPresenter.finish` delivers the exact final text whatever it takes, waiting out the
platform's ``retry_after`` as often as needed.

Adapters implement :class:`Surface` and choose a :class:`PacingPolicy`; a surface may also show
"typing…" (:class:`TypingSurface`), wait for a bot-wide turn before the text is picked
(:class:`GatedSurface`), or put its closing buttons on the final text (:class:`FoldingSurface`).
Every request says how much a person notices it (:class:`Urgency`): a chat's shared bucket and a
bot-wide gate serve a new answer's first message first, then final texts, then edits.
Nothing here knows a platform. Time comes from an injected ``clock`` and ``sleep`` so tests run in virtual time.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import itertools
import logging
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Literal, Protocol, runtime_checkable

from bot.display.text import Chunk, close_open_markup, split_chunks
from bot.errors import PlatformRateLimited
from bot.ops import metrics

__all__ = [
    "FoldingSurface",
    "GatedSurface",
    "Outcome",
    "PacingPolicy",
    "PresentedAnswer",
    "StreamPresenter",
    "Surface",
    "TokenBucket",
    "TypingSurface",
    "Urgency",
    "present_stream",
    "show_unfolded",
]

logger = logging.getLogger(__name__)

Outcome = Literal["complete", "stopped", "failed"]
Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

TYPING_REPEAT = 4.0  # seconds; a platform's "typing…" lasts about five
FINAL_ATTEMPTS = 10  # rate-limited attempts per final operation before giving up
FINAL_ERROR_ATTEMPTS = 3  # attempts per final operation that fails otherwise
EMPTY_ANSWER = "_(no answer)_"  # platforms refuse empty messages
READ_LEAD = 0.01  # seconds: a paced reader takes the stream this long before the next slot
# The longest a paced reader leaves the stream unread (a long hold after a 429, a slow group
# budget): bytes pile up in the socket meanwhile, and an upstream kept waiting might give up.
MAX_READ_PAUSE = 1.5
READ_STEP = 0.05  # how often a paced reader looks again while an operation is in flight


class Urgency(enum.IntEnum):
    """How much a person notices a request of an answer; a shared budget serves the lowest first.

    The first message of a new answer (the asker sees nothing until it comes), then the final
    text of an answer or of a message it moved on from, then intermediate edits (only the newest
    text of an answer is ever sent, so one of them waiting longer costs nothing but freshness).
    """

    FIRST = 0
    FINAL = 1
    EDIT = 2

    @property
    def patience(self) -> float:
        """Seconds a request of this urgency yields to more urgent ones at most.

        Waiting requests are served in the order of their arrival plus this: strict priority
        within these spans, and no starvation past them (an answer's edits still progress while
        first messages keep arriving faster than the budget).
        """
        return _PATIENCE[self]


_PATIENCE = {Urgency.FIRST: 0.0, Urgency.FINAL: 1.0, Urgency.EDIT: 4.0}


@dataclass(frozen=True, slots=True)
class PacingPolicy:
    """How fast and how long one chat's messages may be.

    At most ``burst`` operations (sends and edits) back to back, then one per ``min_interval``
    seconds. ``max_length`` is the message limit in characters of the markdown-ish text the
    presenter produces (a surface whose rendering grows the text reports a smaller one).
    """

    min_interval: float
    max_length: int
    burst: int = 1
    # How the platform counts ``max_length`` (Telegram counts UTF-16 code units, so an emoji is
    # two); the default counts characters.
    measure: Callable[[str], int] = len
    typing_indicator: str = " ▌"
    # Close open code fences and spans in intermediate texts (every platform with markup needs
    # it; a terminal, which shows raw text and only appends, does not).
    close_markup: bool = True
    # Count each interval from the previous operation's answer (True), so requests reach the
    # platform an interval apart whatever the latency; or from its start (False), for a client
    # library that itself holds back a request until the platform's window reopens (counting
    # from an answer delayed that way would add the wait to the next interval).
    count_from_response: bool = True

    def __post_init__(self) -> None:
        if self.min_interval < 0 or self.burst < 1:
            raise ValueError("min_interval must be >= 0 and burst >= 1")
        if self.max_length < 4 * len(self.typing_indicator) + 16:
            raise ValueError(f"max_length {self.max_length} leaves no room for text")


@dataclass(frozen=True, slots=True)
class PresentedAnswer:
    """The messages an answer ended up in, and the answer's full text (without any note)."""

    handles: list[str]
    text: str


@runtime_checkable
class Surface(Protocol):
    """Where an answer is shown; each adapter implements one per chat (and per answer)."""

    async def send(self, text: str, *, final: bool) -> str:
        """Post a new message; return an opaque handle for editing it. May raise PlatformRateLimited."""

    async def edit(self, handle: str, text: str, *, final: bool) -> None:
        """Replace a message's text. ``final`` marks its last text. May raise PlatformRateLimited."""

    async def finish(self, handles: Sequence[str], outcome: Outcome) -> None:
        """The answer is over (e.g. swap a Stop button for Regenerate)."""


@runtime_checkable
class TypingSurface(Surface, Protocol):
    """A surface that can show "typing…"; the presenter repeats it until the first text shows."""

    async def typing(self) -> None: ...


@runtime_checkable
class FoldingSurface(Surface, Protocol):
    """A surface that can fold :meth:`Surface.finish` into the answer's last send or edit: one
    request instead of two (the closing buttons come with the final text, a budget is spared)."""

    async def show_last(
        self, handle: str | None, text: str, earlier: Sequence[str], outcome: Outcome
    ) -> tuple[str, bool]:
        """The last message's final ``text``: sent when ``handle`` is None, else edited; and the
        answer finished with it (``earlier`` are the messages before this one) where it can.

        Returns the message's handle and True when the answer is finished, False when it only
        showed the text (``finish`` is still due).
        """


async def show_unfolded(surface: Surface, handle: str | None, text: str) -> tuple[str, bool]:
    """What a ``FoldingSurface.show_last`` does when it cannot fold this time: send or edit the
    last text as usual and leave ``finish`` due (the False)."""
    if handle is None:
        return await surface.send(text, final=True), False
    await surface.edit(handle, text, final=True)
    return handle, False


@runtime_checkable
class GatedSurface(Surface, Protocol):
    """A surface whose requests also wait for a budget wider than the chat (a bot-wide limit).

    The presenter waits for :meth:`turn` first and only then picks the text, so what goes out is
    the newest text at the moment it can go rather than the text from before a long wait. The
    next send or edit uses that turn instead of waiting again. ``urgency`` orders the waiting
    turns of every chat (see :class:`Urgency`).
    """

    async def turn(self, urgency: Urgency) -> None: ...


class TokenBucket:
    """A token bucket per chat: ``burst`` operations back to back, then one per ``min_interval``.

    Share one bucket between presenters that show answers in the same chat. A platform's
    ``retry_after`` empties it until then (:meth:`hold`). Presenters that wait for a slot
    :meth:`join` the bucket with their next request's :class:`Urgency`; one yields the next slot
    to any more urgent waiter (by arrival plus patience, as the bot-wide gate orders its turns).
    """

    _EPS = 1e-9

    def __init__(self, policy: PacingPolicy, clock: Clock = time.monotonic) -> None:
        self._interval = policy.min_interval
        self._burst = float(policy.burst)
        self._count_from_response = policy.count_from_response
        self._clock = clock
        self._tokens = self._burst
        self._stamp = clock()
        self._held_until = float("-inf")
        self._waiters: dict[int, tuple[float, int]] = {}  # ticket -> (arrival + patience, urgency)
        self._tickets = itertools.count()

    def _refill(self, now: float) -> None:
        if self._interval <= 0:
            self._tokens = self._burst
        elif now > self._stamp:
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) / self._interval)
        self._stamp = max(self._stamp, now)

    def retune(self, min_interval: float) -> None:
        """The platform announced its real budget: time so far counts at the old rate, then the new one."""
        self._refill(self._clock())
        self._interval = min_interval

    def join(self, urgency: Urgency) -> int:
        """Wait for a slot from now (a ticket for :meth:`delay`); :meth:`leave` when done waiting."""
        ticket = next(self._tickets)
        self._waiters[ticket] = (self._clock() + urgency.patience, int(urgency))
        return ticket

    def leave(self, ticket: int) -> None:
        self._waiters.pop(ticket, None)

    def delay(self, ticket: int | None = None) -> float:
        """Seconds until an operation may go; 0 when one may go now.

        With a ``ticket``, the slots due to more urgent waiters come first: one each.
        """
        now = self._clock()
        self._refill(now)
        wait = self._held_until - now
        need = 1.0
        if ticket is not None and ticket in self._waiters:
            mine = (*self._waiters[ticket], ticket)
            need += sum(1 for t, w in self._waiters.items() if (*w, t) < mine)
        if self._tokens < need - self._EPS:
            # Tokens are counted as of ``_stamp``, which a hold may have put in the future.
            wait = max(wait, self._stamp - now + (need - self._tokens) * self._interval)
        return max(0.0, wait)

    def take(self) -> None:
        """Spend one operation (call right after :meth:`delay` returned 0, with no await between)."""
        self._refill(self._clock())
        self._tokens = max(0.0, self._tokens - 1)

    def touch(self) -> None:
        """The operation taken last has just completed: count it from now, not from its start.

        The platform sees a request some time after we send it; counting from the answer keeps the
        next request at least ``min_interval`` behind it there too, whatever the latency. A no-op
        under a policy that counts from the start (``count_from_response=False``).
        """
        if self._count_from_response:
            self.count_from_now()

    def count_from_now(self) -> None:
        """The operation taken last starts (or ends) only now: the next interval counts from here."""
        self._stamp = max(self._stamp, self._clock())

    def hold(self, seconds: float) -> None:
        """The platform said wait: one operation when ``seconds`` have passed, no burst after."""
        now = self._clock()
        self._held_until = max(self._held_until, now + seconds)
        self._refill(now)
        self._tokens = 0.0
        self._stamp = max(now, self._held_until - self._interval)


@dataclass(slots=True)
class _Message:
    """One message of the answer as the presenter knows it."""

    handle: str | None = None
    shown: str | None = None  # the text the platform has now, as far as we know
    sealed: str | None = None  # its final text, once the answer has moved on to a next message
    deferred: bool = False  # its sealing failed while streaming: left to the final pass


@dataclass(slots=True)
class _Op:
    index: int  # into the presenter's messages
    text: str
    final: bool


@dataclass(slots=True)
class _Layout:
    """The current (last) message: where its slice of the answer starts, and its reopened fence."""

    start: int = 0
    reopen: str = ""
    messages: list[_Message] = field(default_factory=lambda: [_Message()])


class StreamPresenter:
    """Shows one streaming answer on a Surface under a PacingPolicy. Use ``async with``.

    ``append`` for every delta, then ``await finish(...)`` once; the flusher runs in between.
    Leaving the block without ``finish`` only stops the background tasks (the messages keep
    whatever they show); the caller decides how an answer ends.
    """

    def __init__(
        self,
        surface: Surface,
        policy: PacingPolicy,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        bucket: TokenBucket | None = None,
    ) -> None:
        self._surface = surface
        # What the surface can do beyond Surface, looked up once (a protocol isinstance is slow).
        self._gated = surface if isinstance(surface, GatedSurface) else None
        self._folding = surface if isinstance(surface, FoldingSurface) else None
        self._policy = policy
        self._clock = clock
        self._sleep = sleep
        self._bucket = bucket if bucket is not None else TokenBucket(policy, clock)
        self._parts: list[str] = []
        self._size = 0
        self._layout = _Layout()
        self._wake = asyncio.Event()
        self._shown_once = asyncio.Event()
        self._closing = False
        self._finished = False
        self._in_op = False
        self._turning = False  # waiting for a bot-wide turn: the text is picked when it ends
        self._flusher: asyncio.Task[None] | None = None
        self._typer: asyncio.Task[None] | None = None
        self._unshown_since: float | None = None  # when the oldest text not yet sent came (metrics)

    # ------------------------------------------------------------ push API

    def append(self, delta: str) -> None:
        """Take one delta of the answer; the flusher shows it when the chat's budget allows."""
        if self._finished:
            raise RuntimeError("append() after finish()")
        if delta:
            self._parts.append(delta)
            self._size += len(delta)
            self._wake.set()
            if self._unshown_since is None:
                self._unshown_since = self._clock()

    async def until_next_show(self) -> None:
        """Sleep until new text could next be shown: a hair before the chat's next slot.

        A stream reader awaits this before each read (``stream_chat(pace=...)``), so a 40-token/s
        answer shown once a second wakes the bot about once a second, not 40 times: the bytes
        gather meanwhile and come in one read, just in time for the edit. Returns at once when
        text could show now, or while a bot-wide turn is awaited (its text is picked late);
        never sleeps longer than ``MAX_READ_PAUSE``. While an operation is in flight it looks
        again every ``READ_STEP``: that operation's answer may change the chat's budget (a
        platform announcing its limits), and with it the next slot.
        """
        slept = 0.0
        while not (self._closing or self._turning):
            wait = min(self._bucket.delay() - READ_LEAD, MAX_READ_PAUSE - slept)
            if wait <= 0:
                return
            step = min(wait, READ_STEP) if self._in_op else wait
            await self._sleep(step)
            slept += step
            if step == wait:
                return  # the slot (or the longest pause) has come

    @property
    def text(self) -> str:
        """The whole answer so far."""
        if len(self._parts) > 1:
            # Joined only when read (once per edit at most), then kept joined.
            self._parts = ["".join(self._parts)]
        return self._parts[0] if self._parts else ""

    @property
    def handles(self) -> list[str]:
        """Handles of the messages shown so far, in order."""
        return [m.handle for m in self._layout.messages if m.handle is not None]

    async def __aenter__(self) -> StreamPresenter:
        self._flusher = asyncio.create_task(self._flush_loop(), name="stream-presenter-flusher")
        if isinstance(self._surface, TypingSurface):
            self._typer = asyncio.create_task(self._typing_loop(self._surface), name="stream-typing")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stop_background()

    async def finish(self, outcome: Outcome = "complete", note: str | None = None) -> PresentedAnswer:
        """Deliver the exact final text (plus ``note`` in italics), then tell the surface it is over.

        Raises the surface's last error if a final send or edit still fails after every retry.
        """
        if self._finished:
            raise RuntimeError("finish() called twice")
        await self._stop_background()
        self._finished = True
        answer = self.text
        final = _with_note(answer, note)
        if not final.strip() and not self._layout.messages[0].handle:
            final = EMPTY_ANSWER
        if not await self._deliver_final(final, outcome):
            await self._final_call(functools.partial(self._paced_finish, outcome), what="finish")
        return PresentedAnswer(self.handles, answer)

    # ------------------------------------------------------------ background

    async def _stop_background(self) -> None:
        self._closing = True
        self._wake.set()
        for task in (self._typer, self._flusher):
            if task is None:
                continue
            # An operation in flight finishes (its handle matters); a wait is simply cancelled.
            if task is self._typer or not self._in_op:
                task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # we are being cancelled ourselves, not just our helper task
        self._typer = self._flusher = None

    async def _typing_loop(self, surface: TypingSurface) -> None:
        while not self._shown_once.is_set():
            try:
                await surface.typing()
            except Exception:
                logger.warning("typing indicator failed", exc_info=True)
            await self._sleep(TYPING_REPEAT)

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            await self._wait_slot(self._urgency())
            if self._closing:
                return
            self._wake.clear()
            op = self._next_op()
            if op is None:
                continue
            self._bucket.take()  # now, before any wait: presenters sharing the bucket must see it spent
            if self._gated is not None:
                self._turning = True
                try:
                    await self._gated.turn(self._urgency(op))  # seconds, under a busy bot-wide limit
                finally:
                    self._turning = False
                self._bucket.count_from_now()
                op = self._next_op() or op  # the newest text, now that it can go
            self._in_op = True
            try:
                await self._intermediate(op)
            finally:
                self._in_op = False
            messages = self._layout.messages
            if op.index < len(messages) - 1 or any(
                m.sealed not in (None, m.shown) and not m.deferred for m in messages
            ):
                # A finalised message or a continuation is still due, or the newest text, which
                # waited while an earlier message was finalised (even if no delta comes again).
                self._wake.set()

    def _urgency(self, op: _Op | None = None) -> Urgency:
        """How much the next request (``op``, or whatever comes next while streaming) is noticed."""
        messages = self._layout.messages
        if messages[0].handle is None:
            return Urgency.FIRST  # the asker sees nothing of the answer yet
        if op is not None:
            return Urgency.FINAL if op.final else Urgency.EDIT
        if any(m.sealed not in (None, m.shown) and not m.deferred for m in messages[:-1]):
            return Urgency.FINAL  # a message the answer moved on from gets its final text
        return Urgency.EDIT

    async def _take_slot(self, urgency: Urgency) -> None:
        """Wait for the chat's next slot and spend it (no await between the two)."""
        await self._wait_slot(urgency)
        self._bucket.take()

    async def _wait_slot(self, urgency: Urgency) -> None:
        # Sleep exactly until the bucket has a token; loop because a timer may fire a hair early.
        ticket = self._bucket.join(urgency)
        try:
            while (wait := self._bucket.delay(ticket)) > 0:
                await self._sleep(wait)
        finally:
            self._bucket.leave(ticket)

    async def _intermediate(self, op: _Op) -> None:
        """One paced operation (its token taken) while streaming; errors are left for the final pass."""
        try:
            await self._perform(op)
        except PlatformRateLimited as exc:
            logger.info("platform asked to wait %.2fs during streaming", exc.retry_after)
            self._bucket.hold(exc.retry_after)
            self._wake.set()
        except Exception:
            logger.warning("intermediate %s failed; the final pass retries", self._kind(op), exc_info=True)
            if op.final:
                self._layout.messages[op.index].deferred = True

    def _kind(self, op: _Op) -> str:
        return "edit" if self._layout.messages[op.index].handle is not None else "send"

    async def _perform(self, op: _Op) -> None:
        message = self._layout.messages[op.index]
        kind, since, self._unshown_since = self._kind(op), self._unshown_since, None
        try:
            if message.handle is None:
                message.handle = await self._surface.send(op.text, final=op.final)
                self._shown_once.set()
            else:
                await self._surface.edit(message.handle, op.text, final=op.final)
        finally:
            self._bucket.touch()
        message.shown = op.text
        metrics.shown(kind, None if since is None else self._clock() - since)

    # ------------------------------------------------------------ layout

    def _next_op(self) -> _Op | None:
        """The most useful operation now: finalise earlier messages first, else show the newest text."""
        self._relayout()
        messages = self._layout.messages
        for index, message in enumerate(messages[:-1]):
            if message.deferred:
                if message.handle is None:
                    return None  # later messages must not overtake it: wait for the final pass
                continue
            if message.sealed != message.shown:
                assert message.sealed is not None
                return _Op(index, message.sealed, final=True)
        if not self._segment().strip():
            return None  # nothing worth a message yet (platforms refuse blank text)
        visible = self._visible()
        last = messages[-1]
        if visible == last.shown:
            return None
        return _Op(len(messages) - 1, visible, final=False)

    def _segment(self) -> str:
        """The current message's text: its reopened fence and its slice of the answer."""
        return self._layout.reopen + self.text[self._layout.start :]

    def _visible(self) -> str:
        text = self._segment() + self._policy.typing_indicator
        return close_open_markup(text) if self._policy.close_markup else text

    def _relayout(self) -> None:
        """When the current message would outgrow the limit, seal it and start continuations."""
        limit = self._policy.max_length
        if (
            len(self._layout.reopen)
            + self._size
            - self._layout.start
            + 2 * len(self._policy.typing_indicator)
            < limit // 2
        ):
            return  # far from the limit: no need to look at the text
        if self._policy.measure(self._visible()) <= limit:
            return
        room = limit - len(self._policy.typing_indicator) - 8
        chunks = self._fit(self._segment(), room, tail_extra=self._policy.typing_indicator)
        self._seal(chunks[:-1], chunks[-1])

    def _fit(self, segment: str, room: int, *, tail_extra: str = "") -> list[Chunk]:
        """``split_chunks`` with every piece (the last one with ``tail_extra``) within the limit
        as the platform measures it: shrink the room by the overshoot until it fits."""
        limit, measure = self._policy.max_length, self._policy.measure
        for _ in range(8):
            chunks = split_chunks(segment, room)
            sizes = [measure(c.rendered) for c in chunks[:-1]]
            sizes.append(measure(close_open_markup(chunks[-1].rendered + tail_extra)))
            if max(sizes) <= limit:
                break
            # Each character counts at least one unit, so this many fewer always helps.
            room = max(16, room - (max(sizes) - limit))
        return chunks

    def _seal(self, done: list[Chunk], tail: Chunk) -> None:
        layout = self._layout
        consumed = sum(len(c.body) for c in done) - len(layout.reopen)
        if not done or consumed <= 0:
            return  # the reopened fence line alone would be sealed: keep growing instead
        layout.messages[-1].sealed = done[0].rendered
        layout.messages.extend(_Message(sealed=c.rendered) for c in done[1:])
        layout.messages.append(_Message())
        layout.start += consumed
        layout.reopen = tail.reopen

    # ------------------------------------------------------------ final delivery

    async def _deliver_final(self, final: str, outcome: Outcome) -> bool:
        """Show every message's final text; True if the last send or edit also finished the answer."""
        layout = self._layout
        segment = layout.reopen + final[layout.start :]
        chunks = self._fit(segment, self._policy.max_length)
        last = layout.messages.pop()
        last.sealed = chunks[0].rendered
        layout.messages.append(last)
        layout.messages.extend(_Message(sealed=c.rendered) for c in chunks[1:])
        for index, message in enumerate(layout.messages):
            assert message.sealed is not None
            if message.sealed == message.shown:
                continue
            if not message.sealed.strip():
                # A whitespace-only piece shows nothing and platforms refuse it.
                if message.handle is None:
                    continue
                message.sealed = EMPTY_ANSWER
            op = _Op(index, message.sealed, final=True)
            is_last = index == len(layout.messages) - 1
            if is_last and self._folding is not None:
                folded = functools.partial(self._paced_last, self._folding, op, outcome)
                return await self._final_call(folded, what=self._kind(op))
            await self._final_call(functools.partial(self._paced, op), what=self._kind(op))
        return False

    async def _paced(self, op: _Op) -> bool:
        await self._take_slot(self._urgency(op))
        await self._perform(op)
        return False

    async def _paced_last(self, surface: FoldingSurface, op: _Op, outcome: Outcome) -> bool:
        """The last message's final text, with the answer's finish folded in where the surface can."""
        messages = self._layout.messages
        message = messages[op.index]
        earlier = [m.handle for m in messages[: op.index] if m.handle is not None]
        kind = self._kind(op)
        await self._take_slot(self._urgency(op))
        try:
            message.handle, finished = await surface.show_last(message.handle, op.text, earlier, outcome)
        finally:
            self._bucket.touch()
        self._shown_once.set()
        message.shown = op.text
        metrics.shown(kind, None)
        return finished

    async def _paced_finish(self, outcome: Outcome) -> bool:
        # Swapping buttons is one more request to the platform in this chat: pace it like an edit.
        await self._take_slot(Urgency.FINAL)
        try:
            await self._surface.finish(self.handles, outcome)
        finally:
            self._bucket.touch()
        metrics.shown("finish", None)
        return True

    async def _final_call(self, call: Callable[[], Awaitable[bool]], *, what: str) -> bool:
        """Run a final operation until it succeeds (its result returned): rate limits are waited
        out, errors retried."""
        limited = errors = 0
        while True:
            try:
                result = await call()
            except PlatformRateLimited as exc:
                limited += 1
                if limited >= FINAL_ATTEMPTS:
                    logger.exception("final %s still rate limited after %d attempts", what, limited)
                    raise
                logger.info("final %s rate limited; waiting %.2fs", what, exc.retry_after)
                # The next attempt waits for the bucket, which now opens when retry_after has passed.
                self._bucket.hold(exc.retry_after)
            except Exception:
                errors += 1
                if errors >= FINAL_ERROR_ATTEMPTS:
                    logger.exception("final %s failed %d times; giving up", what, errors)
                    raise
                logger.warning("final %s failed; retrying", what, exc_info=True)
                await self._sleep(max(self._policy.min_interval, 0.5) * errors)
            else:
                return result


def _with_note(answer: str, note: str | None) -> str:
    """The answer with a note in italics; markup left open by a cut-off answer is closed first."""
    if not note:
        return answer
    body = close_open_markup(answer)
    return f"{body}\n\n_{note}_" if body.strip() else f"_{note}_"


async def present_stream(
    deltas: AsyncIterable[str],
    surface: Surface,
    policy: PacingPolicy,
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
) -> PresentedAnswer:
    """Show a whole stream of deltas; a failing stream ends the answer with a note and re-raises."""
    async with StreamPresenter(surface, policy, clock=clock, sleep=sleep) as presenter:
        try:
            async for delta in deltas:
                presenter.append(delta)
        except asyncio.CancelledError:
            await presenter.finish("stopped", "(stopped)")
            raise
        except Exception as exc:
            await presenter.finish("failed", f"⚠️ The answer was cut off: {exc}")
            raise
        return await presenter.finish("complete")
