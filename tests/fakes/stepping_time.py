"""Time that moves only when the code under test sleeps, for tests that also do real I/O.

``VirtualTime`` needs every task to block on a timer; a test talking to a real fake server
over 127.0.0.1 blocks on sockets instead. Here ``sleep(d)`` moves the clock ``d`` forward and
yields once, so back-off and deadlines pass instantly and the code's own clock reads exactly
the time its own sleeps made up. ``stall_when`` freezes every later sleep (until cancelled) once
a condition holds: how a test stops a service at a chosen point, as a crash would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class SteppingTime:
    def __init__(self, start: datetime = datetime(2026, 1, 1, 12, tzinfo=UTC)) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self.stall_when: Callable[[], bool] | None = None
        self.stalled = asyncio.Event()

    def clock(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.now.timestamp()

    async def sleep(self, delay: float) -> None:
        if self.stall_when is not None and self.stall_when():
            self.stalled.set()
            await asyncio.Event().wait()  # until the task is cancelled
        self.sleeps.append(delay)
        if delay > 0:
            self.now += timedelta(seconds=delay)
        await asyncio.sleep(0)
