"""Virtual time for asyncio tests: a clock and a sleep that never really wait.

``VirtualTime.run(coro)`` runs a coroutine; whenever every task is blocked, time jumps to the
earliest pending ``sleep`` and wakes it. Nothing depends on the wall clock, so pacing tests are
exact and instant. Code under test takes ``clock=vt.time, sleep=vt.sleep``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class Deadlock(AssertionError):
    """Every task waits on something that no timer will ever wake."""


class VirtualTime:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self._timers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def time(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        if delay <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._timers, (self.now + delay, next(self._seq), future))
        await future

    async def run(self, coro: Coroutine[Any, Any, T], *, max_time: float = 10_000.0) -> T:
        """Run ``coro`` to completion in virtual time (at most ``max_time`` virtual seconds)."""
        task = asyncio.ensure_future(coro)
        deadline = self.now + max_time
        while not task.done():
            await self._settle()
            if task.done():
                break
            if not self._advance():
                task.cancel()
                raise Deadlock("every task is blocked and no timer is pending")
            if self.now > deadline:
                task.cancel()
                raise Deadlock(f"still running after {max_time} virtual seconds")
        return task.result()

    async def _settle(self) -> None:
        """Yield until no other callback is ready, i.e. every task is blocked on a future.

        Reads the loop's ready queue (a private attribute of asyncio's default loop) because
        that is the only exact test for "nothing else can run now".
        """
        loop = asyncio.get_running_loop()
        ready = getattr(loop, "_ready", None)
        for _ in range(10_000):
            await asyncio.sleep(0)
            if ready is not None and not ready:
                return
        if ready is not None:
            raise AssertionError("the event loop never settled (a busy loop?)")

    def _advance(self) -> bool:
        """Jump to the earliest live timer and wake every timer due then; False if there is none."""
        while self._timers and self._timers[0][2].done():
            heapq.heappop(self._timers)  # cancelled sleeps
        if not self._timers:
            return False
        self.now = max(self.now, self._timers[0][0])
        while self._timers and self._timers[0][0] <= self.now:
            _, _, future = heapq.heappop(self._timers)
            if not future.done():
                future.set_result(None)
        return True
