"""An in-memory Surface that records every call with the time of the clock it was given.

It behaves like a strict platform: it refuses empty text, text over ``max_length`` and unchanged
edits (Telegram's "message is not modified"), and can be told to answer the Nth send/edit with
``PlatformRateLimited`` or a plain failure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.display.streaming import Outcome, Urgency, show_unfolded
from bot.errors import PlatformRateLimited


class SurfaceRefused(Exception):
    """What the fake platform answers to a request it does not like."""


@dataclass(frozen=True, slots=True)
class Call:
    kind: str  # "send" | "edit" | "finish" | "typing"
    at: float
    number: int  # 1-based count of send/edit attempts ("finish"/"typing": 0)
    handle: str = ""
    text: str = ""
    final: bool = False
    ok: bool = True


class RecordingSurface:
    """Records calls; faults are injected by attempt number or for final texts.

    ``rate_limit_on={n: seconds}`` and ``fail_on={n}`` refuse the nth send/edit attempt;
    ``fail_intermediate`` refuses every non-final one; ``rate_limit_finals`` answers the next
    final sends/edits with those ``retry_after`` values, one each. ``latencies`` (with ``sleep``)
    delay each request before the platform sees it, cycling through the values; ``holds`` (with
    ``sleep``) delay each answer after the platform saw the request, cycling too (a client library
    that sits on the answer until the platform's window reopens, as discord.py does).
    """

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        max_length: int = 10_000,
        rate_limit_on: Mapping[int, float] | None = None,
        fail_on: set[int] | None = None,
        fail_intermediate: bool = False,
        rate_limit_finals: Sequence[float] = (),
        latencies: Sequence[float] = (),
        holds: Sequence[float] = (),
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self.clock = clock
        self.max_length = max_length
        self.rate_limit_on = dict(rate_limit_on or {})
        self.fail_on = set(fail_on or ())
        self.fail_intermediate = fail_intermediate
        self.rate_limit_finals = list(rate_limit_finals)  # answers to the next final sends/edits
        self.calls: list[Call] = []
        self.messages: dict[str, str] = {}  # handle -> current text
        self.order: list[str] = []  # handles in the order messages were sent
        self.finished: tuple[tuple[str, ...], Outcome] | None = None
        self.latencies = list(latencies)  # request delays, cycled: the platform sees a call this late
        self.holds = list(holds)  # answer delays, cycled: the caller hears back this much later
        self.sleep = sleep
        self._attempts = 0

    # ------------------------------------------------------------ Surface

    async def send(self, text: str, *, final: bool) -> str:
        await self._travel()
        number = self._attempt("send", "", text, final)
        handle = f"m{len(self.order) + 1}"
        self.order.append(handle)
        self.messages[handle] = text
        self.calls.append(Call("send", self.clock(), number, handle, text, final))
        await self._held_answer(number)
        return handle

    async def edit(self, handle: str, text: str, *, final: bool) -> None:
        await self._travel()
        number = self._attempt("edit", handle, text, final)
        if self.messages.get(handle) == text:
            self.calls.append(Call("edit", self.clock(), number, handle, text, final, ok=False))
            raise SurfaceRefused("message is not modified")
        self.messages[handle] = text
        self.calls.append(Call("edit", self.clock(), number, handle, text, final))
        await self._held_answer(number)

    async def finish(self, handles: Sequence[str], outcome: Outcome) -> None:
        self.calls.append(Call("finish", self.clock(), 0))
        self.finished = (tuple(handles), outcome)

    async def typing(self) -> None:
        self.calls.append(Call("typing", self.clock(), 0))

    # ------------------------------------------------------------ helpers for tests

    async def _travel(self) -> None:
        if self.latencies and self.sleep is not None:
            delay = self.latencies[self._attempts % len(self.latencies)]
            await self.sleep(delay)

    async def _held_answer(self, number: int) -> None:
        if self.holds and self.sleep is not None:
            await self.sleep(self.holds[(number - 1) % len(self.holds)])

    def _attempt(self, kind: str, handle: str, text: str, final: bool) -> int:
        self._attempts += 1
        number = self._attempts
        failure: Exception | None = None
        if number in self.rate_limit_on:
            failure = PlatformRateLimited(self.rate_limit_on[number])
        elif final and self.rate_limit_finals:
            failure = PlatformRateLimited(self.rate_limit_finals.pop(0))
        elif number in self.fail_on or (self.fail_intermediate and not final):
            failure = SurfaceRefused(f"injected failure of attempt {number}")
        elif not text.strip() or len(text) > self.max_length:
            failure = SurfaceRefused(f"bad text of length {len(text)}")
        if failure is not None:
            self.calls.append(Call(kind, self.clock(), number, handle, text, final, ok=False))
            raise failure
        return number

    @property
    def operations(self) -> list[Call]:
        """Every send/edit attempt the platform saw (refused ones too: they count against limits)."""
        return [c for c in self.calls if c.kind in ("send", "edit")]

    @property
    def paced(self) -> list[Call]:
        """Every request that counts against the chat's rate limit (send, edit, finish)."""
        return [c for c in self.calls if c.kind in ("send", "edit", "finish")]

    def final_texts(self) -> list[str]:
        return [self.messages[h] for h in self.order]


class GatedRecordingSurface(RecordingSurface):
    """A RecordingSurface behind a bot-wide queue (a ``GatedSurface``): each turn takes ``wait``;
    ``urgencies`` records what each turn was asked for."""

    def __init__(
        self, clock: Callable[[], float], *, wait: float, sleep: Callable[[float], Awaitable[None]]
    ) -> None:
        super().__init__(clock, sleep=sleep)
        self.wait = wait
        self.turns = 0
        self.urgencies: list[Urgency] = []

    async def turn(self, urgency: Urgency) -> None:
        assert self.sleep is not None
        self.urgencies.append(urgency)
        await self.sleep(self.wait)
        self.turns += 1


class FoldingRecordingSurface(RecordingSurface):
    """A RecordingSurface that folds ``finish`` into the last send or edit (a ``FoldingSurface``),
    as Telegram does with its buttons on the last message; ``fold=False`` answers "shown only"."""

    def __init__(self, clock: Callable[[], float], *, fold: bool = True, **options: Any) -> None:
        super().__init__(clock, **options)
        self.fold = fold

    async def show_last(
        self, handle: str | None, text: str, earlier: Sequence[str], outcome: Outcome
    ) -> tuple[str, bool]:
        handle, _ = await show_unfolded(self, handle, text)
        if not self.fold:
            return handle, False
        self.finished = ((*earlier, handle), outcome)
        self.calls.append(Call("folded", self.clock(), 0))
        return handle, True
